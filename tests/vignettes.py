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
    # second edition (issue 12): textbook presentations from the mimics evidence brief, not from case reports
    "postoperative_haematoma": {  # days after surgery, relief then sudden severe pain and weakness, collection on MRI
        "time_since_surgery": "under_6_weeks", "onset": "sudden_after_relief", "back_pain": True,
        "radicular_pain": True, "bilateral_leg_symptoms": True, "leg_weakness": True,
        "imaging_fluid_collection": True,
    },
    "surgical_site_infection": {  # diabetic, weeks after surgery, back pain building up, CRP not falling, collection
        "time_since_surgery": "under_6_weeks", "diabetes": True, "onset": "gradual_after_relief",
        "back_pain": True, "deep_aching_pain": True, "raised_inflammatory_markers": True,
        "imaging_fluid_collection": True,
    },
    "vascular_insufficiency": {  # older smoker, walking calf pain never relieved by the operation, absent pulses
        "time_since_surgery": "6_to_24_months", "age_over_65": True, "smoker": True,
        "onset": "unchanged_from_before_surgery", "neurogenic_claudication": True,
        "radicular_pain": False, "absent_distal_pulses": True, "mri_adjacent_level_stenosis": False,
    },
    "hip_disease": {  # older patient, groin and thigh pain on walking, painful hip rotation, relief from a hip injection
        "time_since_surgery": "over_2_years", "age_over_65": True, "onset": "unchanged_from_before_surgery",
        "anterior_thigh_symptoms": True, "mechanical_pain": True, "radicular_pain": False,
        "groin_pain_on_hip_motion": True, "hip_injection_relief": True,
    },
    "meralgia_paresthetica": {  # on waking after prone surgery, burning numbness of the anterolateral thigh, no weakness
        "time_since_surgery": "under_6_weeks", "surgical_approach": "posterior", "onset": "immediate",
        "anterolateral_thigh_numbness": True,
        "numbness_tingling": True, "radicular_pain": False, "leg_weakness": False,
        "hip_flexor_or_quadriceps_weakness": False,
    },
    "lumbar_plexopathy": {  # on waking after a transpsoas fusion, anterior thigh numbness, weak hip flexion, no collection
        "time_since_surgery": "under_6_weeks", "surgical_approach": "lateral", "onset": "immediate",
        "anterior_thigh_symptoms": True, "numbness_tingling": True, "hip_flexor_or_quadriceps_weakness": True,
        "imaging_fluid_collection": False, "abdominal_or_flank_pain": False,
    },
    "sacral_insufficiency_fracture": {  # osteoporotic, fused to S1, new buttock and leg pain weeks later, fracture on CT
        "time_since_surgery": "6_weeks_to_6_months", "fusion_to_sacrum": True, "osteoporosis": True,
        "onset": "sudden_after_relief", "buttock_pain": True, "back_pain": True, "radicular_pain": True,
        "imaging_sacral_fracture": True,
    },
    "other_cause": {  # leg symptoms unchanged by the operation that no named cause explains: every specific test negative
        "time_since_surgery": "6_to_24_months", "onset": "unchanged_from_before_surgery",
        "numbness_tingling": True, "bilateral_leg_symptoms": True, "radicular_pain": False,
        "mri_foraminal_stenosis": False, "mri_adjacent_level_stenosis": False, "mri_recurrent_disc": False,
        "emg_radiculopathy": False, "absent_distal_pulses": False, "groin_pain_on_hip_motion": False,
        "si_provocation_cluster": False, "piriformis_signs": False,
    },
}
