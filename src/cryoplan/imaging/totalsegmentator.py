"""TotalSegmentator's label classes (tasks ``total`` for CT and ``total_mr`` for MR) and the cryoplan
structure each one belongs to.

The class numbers and names are those of TotalSegmentator v2 (Wasserthal et al., Radiol Artif Intell 2023;
D'Antonoli et al., Radiology 2025 for ``total_mr``). Every class maps onto one structure of
`cryoplan.imaging.anatomy.STRUCTURES`; ribs keep their number and side in `rib_number`.

References
----------
.. [1] Wasserthal J, Breit HC, Meyer MT, et al. TotalSegmentator: robust segmentation of 104 anatomic
   structures in CT images. Radiol Artif Intell 2023;5(5):e230024.
.. [2] D'Antonoli TA, Berger LK, Indrakanti AK, et al. TotalSegmentator MRI: robust sequence-independent
   segmentation of multiple anatomic structures in MRI. Radiology 2025;314(2):e241613.
"""

from __future__ import annotations

import re

#: Class number → class name, task ``total`` (CT).
TOTAL_CLASSES: dict[int, str] = {
    1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach",
    7: "pancreas", 8: "adrenal_gland_right", 9: "adrenal_gland_left", 10: "lung_upper_lobe_left",
    11: "lung_lower_lobe_left", 12: "lung_upper_lobe_right", 13: "lung_middle_lobe_right",
    14: "lung_lower_lobe_right", 15: "esophagus", 16: "trachea", 17: "thyroid_gland", 18: "small_bowel",
    19: "duodenum", 20: "colon", 21: "urinary_bladder", 22: "prostate", 23: "kidney_cyst_left",
    24: "kidney_cyst_right", 25: "sacrum", 26: "vertebrae_S1", 27: "vertebrae_L5", 28: "vertebrae_L4",
    29: "vertebrae_L3", 30: "vertebrae_L2", 31: "vertebrae_L1", 32: "vertebrae_T12", 33: "vertebrae_T11",
    34: "vertebrae_T10", 35: "vertebrae_T9", 36: "vertebrae_T8", 37: "vertebrae_T7", 38: "vertebrae_T6",
    39: "vertebrae_T5", 40: "vertebrae_T4", 41: "vertebrae_T3", 42: "vertebrae_T2", 43: "vertebrae_T1",
    44: "vertebrae_C7", 45: "vertebrae_C6", 46: "vertebrae_C5", 47: "vertebrae_C4", 48: "vertebrae_C3",
    49: "vertebrae_C2", 50: "vertebrae_C1", 51: "heart", 52: "aorta", 53: "pulmonary_vein",
    54: "brachiocephalic_trunk", 55: "subclavian_artery_right", 56: "subclavian_artery_left",
    57: "common_carotid_artery_right", 58: "common_carotid_artery_left", 59: "brachiocephalic_vein_left",
    60: "brachiocephalic_vein_right", 61: "atrial_appendage_left", 62: "superior_vena_cava",
    63: "inferior_vena_cava", 64: "portal_vein_and_splenic_vein", 65: "iliac_artery_left",
    66: "iliac_artery_right", 67: "iliac_vena_left", 68: "iliac_vena_right", 69: "humerus_left",
    70: "humerus_right", 71: "scapula_left", 72: "scapula_right", 73: "clavicula_left", 74: "clavicula_right",
    75: "femur_left", 76: "femur_right", 77: "hip_left", 78: "hip_right", 79: "spinal_cord",
    80: "gluteus_maximus_left", 81: "gluteus_maximus_right", 82: "gluteus_medius_left",
    83: "gluteus_medius_right", 84: "gluteus_minimus_left", 85: "gluteus_minimus_right", 86: "autochthon_left",
    87: "autochthon_right", 88: "iliopsoas_left", 89: "iliopsoas_right", 90: "brain", 91: "skull",
    92: "rib_left_1", 93: "rib_left_2", 94: "rib_left_3", 95: "rib_left_4", 96: "rib_left_5", 97: "rib_left_6",
    98: "rib_left_7", 99: "rib_left_8", 100: "rib_left_9", 101: "rib_left_10", 102: "rib_left_11",
    103: "rib_left_12", 104: "rib_right_1", 105: "rib_right_2", 106: "rib_right_3", 107: "rib_right_4",
    108: "rib_right_5", 109: "rib_right_6", 110: "rib_right_7", 111: "rib_right_8", 112: "rib_right_9",
    113: "rib_right_10", 114: "rib_right_11", 115: "rib_right_12", 116: "sternum", 117: "costal_cartilages",
}  # fmt: skip

#: Class number → class name, task ``total_mr`` (MR).
TOTAL_MR_CLASSES: dict[int, str] = {
    1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach",
    7: "pancreas", 8: "adrenal_gland_right", 9: "adrenal_gland_left", 10: "lung_left", 11: "lung_right",
    12: "esophagus", 13: "small_bowel", 14: "duodenum", 15: "colon", 16: "urinary_bladder", 17: "prostate",
    18: "sacrum", 19: "vertebrae", 20: "intervertebral_discs", 21: "spinal_cord", 22: "heart", 23: "aorta",
    24: "inferior_vena_cava", 25: "portal_vein_and_splenic_vein", 26: "iliac_artery_left",
    27: "iliac_artery_right", 28: "iliac_vena_left", 29: "iliac_vena_right", 30: "humerus_left",
    31: "humerus_right", 32: "scapula_left", 33: "scapula_right", 34: "clavicula_left", 35: "clavicula_right",
    36: "femur_left", 37: "femur_right", 38: "hip_left", 39: "hip_right", 40: "gluteus_maximus_left",
    41: "gluteus_maximus_right", 42: "gluteus_medius_left", 43: "gluteus_medius_right",
    44: "gluteus_minimus_left", 45: "gluteus_minimus_right", 46: "autochthon_left", 47: "autochthon_right",
    48: "iliopsoas_left", 49: "iliopsoas_right", 50: "brain",
}  # fmt: skip

#: Task name of each label preset.
TASKS = {"totalsegmentator": TOTAL_CLASSES, "totalsegmentator_mr": TOTAL_MR_CLASSES}

# Class names that are a structure of their own, under cryoplan's name for it.
_SAME = {
    "spleen": "spleen", "gallbladder": "gallbladder", "liver": "liver", "stomach": "stomach",
    "pancreas": "pancreas", "esophagus": "oesophagus", "trachea": "trachea", "thyroid_gland": "thyroid",
    "small_bowel": "small_bowel", "duodenum": "duodenum", "colon": "colon", "urinary_bladder": "bladder",
    "prostate": "prostate", "heart": "heart", "atrial_appendage_left": "heart", "aorta": "aorta",
    "inferior_vena_cava": "ivc", "portal_vein_and_splenic_vein": "portal_vein", "spinal_cord": "spinal_cord",
    "brain": "brain", "sternum": "sternum", "costal_cartilages": "costal_cartilage", "sacrum": "bone",
    "skull": "bone", "intervertebral_discs": "intervertebral_disc",
}  # fmt: skip
# Families of classes by name prefix, in the order they are tried.
_PREFIXES = (
    ("kidney_", "kidney"),  # kidney_left/right and their cysts
    ("adrenal_gland_", "adrenal"),
    ("lung_", "lung"),
    ("vertebrae", "vertebra"),
    ("rib_", "rib"),
    ("pulmonary_vein", "other_vessel"),
    ("brachiocephalic_", "other_vessel"),
    ("subclavian_artery_", "other_vessel"),
    ("common_carotid_artery_", "other_vessel"),
    ("superior_vena_cava", "other_vessel"),
    ("iliac_", "other_vessel"),
    ("humerus_", "bone"),
    ("scapula_", "bone"),
    ("clavicula_", "bone"),
    ("femur_", "bone"),
    ("hip_", "bone"),
    ("gluteus_", "muscle"),
    ("autochthon_", "muscle"),
    ("iliopsoas_", "muscle"),
)
_RIB = re.compile(r"rib_(left|right)_(\d+)")


def structure_of(class_name: str) -> str:
    """The cryoplan structure of a TotalSegmentator class (``rib_right_9`` → ``rib``).

    Raises
    ------
    KeyError
        For a name that is not a TotalSegmentator ``total`` / ``total_mr`` class.
    """
    if class_name in _SAME:
        return _SAME[class_name]
    for prefix, structure in _PREFIXES:
        if class_name.startswith(prefix):
            return structure
    raise KeyError(class_name)


def rib_number(class_name: str) -> int | None:
    """Signed rib number of a rib class: +1…+12 for the right ribs, −1…−12 for the left; None otherwise."""
    match = _RIB.fullmatch(class_name)
    if match is None:
        return None
    return int(match[2]) * (1 if match[1] == "right" else -1)


def preset_values(task: dict[int, str]) -> dict[str, tuple[int, ...]]:
    """Structure name → the label numbers of its classes, for one task's class table."""
    values: dict[str, list[int]] = {}
    for number, name in task.items():
        values.setdefault(structure_of(name), []).append(number)
    return {structure: tuple(numbers) for structure, numbers in values.items()}
