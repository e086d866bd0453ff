"""Short product labels for titles (eomatch.ids.product_label)."""

from __future__ import annotations

import pytest

from eomatch.ids import product_label


@pytest.mark.parametrize(
    ("product_id", "label"),
    [
        ("LC09_L1TP_042034_20220521_20220525_02_T1", "LC09_L1TP_042034"),
        ("LC08_L1GT_118038_20220101_20220106_02_T2", "LC08_L1GT_118038"),
        ("S2A_MSIL1C_20220521T183921_N0400_R070_T11SLB_20220521T221114", "T11SLB"),
        ("S2B_MSIL2A_20220521T183921_N0400_R070_T32TQM_20220521T221114.SAFE", "T32TQM"),
        ("S2A_MSIL1C_no_tile_here", "S2A_MSIL1C_no_tile_here"),  # unknown shape: the id
        ("MOD09GA.A2022141.h08v05", "MOD09GA.A2022141.h08v05"),
    ],
)
def test_product_label(product_id: str, label: str) -> None:
    assert product_label(product_id) == label
