"""Aligning YAML row lists and renaming state-dict keys (cspdet.nn.transfer), on hand-written rows."""

import torch

from cspdet.nn.transfer import align, report

# A small detector: backbone 0-4, head 5-8 with absolute indices in Concat and Detect
ROWS = [
    [-1, 1, "Conv", [16, 3, 2]],  # 0
    [-1, 1, "Conv", [32, 3, 2]],  # 1
    [-1, 2, "C3k2", [64, False, 0.25]],  # 2
    [-1, 1, "Conv", [64, 3, 2]],  # 3
    [-1, 2, "C3k2", [128, True]],  # 4
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 5
    [[-1, 2], 1, "Concat", [1]],  # 6
    [-1, 2, "C3k2", [64, False]],  # 7
    [[7, 4], 1, "Detect", ["nc"]],  # 8
]
INSERTED = [
    *ROWS[:3],
    [-1, 1, "SqueezeGate", [64]],  # 3: new
    *ROWS[3:6],
    [[-1, 2], 1, "Concat", [1]],  # 7: still reads layer 2
    ROWS[7],
    [[8, 5], 1, "Detect", ["nc"]],  # 9: renumbered
]


def test_inserted_row_renumbers_every_later_layer():
    alignment = align(ROWS, INSERTED)
    assert alignment.pairs == {0: 0, 1: 1, 2: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8}
    assert alignment.new == [3] and alignment.unused == [] and not alignment.identity
    assert alignment.placement() == [0, 1, 2, None, 3, 4, 5, 6, 7, 8]


def test_removed_row_renumbers_and_is_reported_unused():
    removed = [*ROWS[:3], ROWS[4], *ROWS[5:7], ROWS[7], [[6, 3], 1, "Detect", ["nc"]]]
    alignment = align(ROWS, removed)
    assert alignment.pairs == {0: 0, 1: 1, 2: 2, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8}
    assert alignment.new == [] and alignment.unused == [3]


def test_replaced_row_is_new_and_the_rest_stays_in_place():
    replaced = [*ROWS[:2], [-1, 2, "C3k2", [64, True, 0.25]], *ROWS[3:]]
    alignment = align(ROWS, replaced)
    assert alignment.pairs == {j: j for j in range(9) if j != 2}
    assert alignment.new == [2] and alignment.unused == [2] and not alignment.identity
    # Concat [-1, 2] reads the replaced layer on both sides: it still matches


def test_identical_rows_are_the_identity():
    assert align(ROWS, [list(r) for r in ROWS]).identity


def test_absolute_from_must_renumber_to_its_counterpart():
    """A Detect that reads other layers than the checkpoint's is not the same layer, even with equal arguments."""
    rewired = [*INSERTED[:9], [[8, 4], 1, "Detect", ["nc"]]]  # 4 is the checkpoint's layer 3, not its 4
    alignment = align(ROWS, rewired)
    assert 9 not in alignment.pairs and alignment.unused == [8]
    relative = [*ROWS[:6], [[-2, 2], 1, "Concat", [1]], *ROWS[7:]]  # relative indices compare as written
    assert 6 not in align(ROWS, relative).pairs


def test_key_decides_what_compares_equal():
    twin = [[f, n, "C3k2WRC" if m == "C3k2" else m, args] for f, n, m, args in INSERTED]
    stock = align(ROWS, twin, key=lambda r: [r[0], r[1], r[2].removesuffix("WRC"), r[3]])
    assert stock.pairs == align(ROWS, INSERTED).pairs
    # without the key the C3k2WRC rows are new; the Concat and Detect reading them still match (replaced inputs)
    assert align(ROWS, twin).pairs.keys() == {0, 1, 4, 6, 7, 9}


def test_rename_moves_matched_layers_and_drops_unused_ones():
    alignment = align(ROWS, [*ROWS[:3], ROWS[4], *ROWS[5:7], ROWS[7], [[6, 3], 1, "Detect", ["nc"]]])
    renamed = alignment.rename({"model.2.cv1.weight": 1, "model.3.conv.weight": 2, "model.4.m.0.bn.bias": 3, "x": 4})
    assert renamed == {"model.2.cv1.weight": 1, "model.3.m.0.bn.bias": 3, "x": 4}  # layer 3 was removed


def test_report_counts_tensors_and_names_layers():
    alignment = align(ROWS, INSERTED)
    source = {
        "model.2.cv1.conv.weight": torch.zeros(8, 32, 1, 1),
        "model.7.cv1.conv.weight": torch.zeros(8, 64, 1, 1),
        "model.8.cv2.weight": torch.zeros(4, 64),
        "model.8.cv3.weight": torch.zeros(80, 64),
    }
    target = {
        "model.2.cv1.conv.weight": torch.zeros(8, 32, 1, 1),
        "model.3.gate.weight": torch.zeros(64),
        "model.8.cv1.conv.weight": torch.zeros(8, 64, 1, 1),
        "model.9.cv2.weight": torch.zeros(4, 64),
        "model.9.cv3.weight": torch.zeros(2, 64),  # fewer classes
    }
    result = report(alignment, source, target)
    assert result.transferred == ["model.2.cv1.conv.weight", "model.8.cv1.conv.weight", "model.9.cv2.weight"]
    assert result.mismatched == {9: (1, 2)} and (result.total, result.source_total) == (5, 4)
    assert result.summary() == (
        "Transferred 3/5 items from pretrained weights, matching layers by structure (3 of the checkpoint's 4): "
        "renumbered 3-8 -> 4-9; new: 3 SqueezeGate; shape mismatch: 9 Detect (1 of 2 items); "
        "checkpoint layers not used: none"
    )
