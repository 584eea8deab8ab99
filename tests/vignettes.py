"""Typical presentations of each cause, shared by the model and reasoning tests."""

# Each is the typical presentation from the source articles and the evidence brief.
VIGNETTES = {
    "nerve_injury": {  # pain on waking, narrow band, deficit, screw towards the root
        "time_since_surgery": "under_6_weeks", "onset": "immediate", "radicular_pain": True,
        "numbness_tingling": True, "leg_weakness": True, "ct_screw_breach": True,
        "mri_foraminal_stenosis": False,
    },
    "pseudarthrosis": {  # smoker, months later, deep mechanical ache, CT non-union
        "time_since_surgery": "over_2_years", "smoker": True, "onset": "gradual_after_relief",
        "deep_aching_pain": True, "back_pain": True, "mechanical_pain": True, "radicular_pain": False,
        "ct_nonunion": True,
    },
    "epidural_fibrosis": {  # relief, then gradual return at 6-12 weeks, positive SLR, scar on MRI
        "time_since_surgery": "6_weeks_to_6_months", "onset": "gradual_after_relief",
        "radicular_pain": True, "straight_leg_raise": True, "mri_enhancing_scar": True,
        "mri_recurrent_disc": False, "mri_foraminal_stenosis": False,
    },
    "adjacent_segment_disease": {  # years later, claudication, relief sitting, adjacent stenosis
        "time_since_surgery": "over_2_years", "onset": "late_after_good_result",
        "neurogenic_claudication": True, "relief_sitting_or_bending_forward": True,
        "mri_adjacent_level_stenosis": True,
    },
    "recurrent_herniation": {  # relief, then sudden sciatica, SLR, disc on MRI
        "time_since_surgery": "6_to_24_months", "onset": "sudden_after_relief", "radicular_pain": True,
        "straight_leg_raise": True, "mri_recurrent_disc": True,
    },
    "si_joint_strain": {  # fused to the sacrum, buttock ache, positive cluster
        "time_since_surgery": "6_to_24_months", "fusion_to_sacrum": True, "onset": "gradual_after_relief",
        "deep_aching_pain": True, "buttock_pain": True, "radicular_pain": False, "si_provocation_cluster": True,
    },
    "piriformis_syndrome": {  # buttock pain worse sitting, notch tenderness, piriformis manoeuvres positive, SIJ tests negative
        "time_since_surgery": "6_to_24_months", "buttock_pain": True, "worse_sitting": True,
        "piriformis_signs": True, "sciatic_notch_tenderness": True, "si_provocation_cluster": False,
    },
    "foraminal_stenosis": {  # radicular pain since surgery, foraminal narrowing on imaging
        "time_since_surgery": "over_2_years", "onset": "immediate", "radicular_pain": True,
        "numbness_tingling": True, "mri_foraminal_stenosis": True, "mri_adjacent_level_stenosis": False,
    },
}
