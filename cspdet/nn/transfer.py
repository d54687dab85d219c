"""Pretrained weights into a modified model: align two YAML row lists, move the tensors to the renumbered layers.

ultralytics matches pretrained tensors by key (``model.{i}.…``), so a row inserted into or removed from a YAML shifts
the index of every later layer and their weights are lost. Here the two row lists ``[from, repeats, module, args]``
are aligned instead, as a longest common subsequence (the layers keep their order): two rows match when their
repeats, module and arguments are equal and their ``from`` refers to matching layers (relative indices as written,
absolute ones renumbered through the alignment). Every tensor of a matched layer whose shape is unchanged moves to
the layer's new index; a row without a match is a new layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_LAYER_KEY = re.compile(r"model\.(\d+)\.(.+)")


def _froms(row) -> list:
    return row[0] if isinstance(row[0], list) else [row[0]]


def _same_row(a, b) -> bool:
    """Equal repeats, module and arguments, and ``from`` alike: equal relative indices, absolute ones in place."""
    fa, fb = _froms(a), _froms(b)
    return list(a[1:]) == list(b[1:]) and len(fa) == len(fb) and all(x == y for x, y in zip(fa, fb) if x < 0 or y < 0)


def _lcs(source: list, target: list) -> dict[int, int]:
    """Target index -> source index of a longest common subsequence of matching rows (the earliest on ties)."""
    n, m = len(source), len(target)
    length = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            if _same_row(source[i], target[j]):
                length[i][j] = length[i + 1][j + 1] + 1
            else:
                length[i][j] = max(length[i + 1][j], length[i][j + 1])
    pairs, i, j = {}, 0, 0
    while i < n and j < m:
        if _same_row(source[i], target[j]):
            pairs[j] = i
            i, j = i + 1, j + 1
        elif length[i + 1][j] >= length[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _inputs_match(source: list, target: list, pairs: dict[int, int], j: int) -> bool:
    """Whether target row ``j``'s absolute ``from`` indices name the counterparts of its source row's.

    An index naming a layer without counterpart on both sides (a replaced row) counts as matching.
    """
    used = set(pairs.values())
    for t, s in zip(_froms(target[j]), _froms(source[pairs[j]])):
        if t >= 0 and (t in pairs or s in used) and pairs.get(t) != s:
            return False
    return True


@dataclass(frozen=True)
class Alignment:
    """Which source (checkpoint) layer each target layer corresponds to.

    Args:
        source (list): The checkpoint model's rows, ``[from, repeats, module, args]``.
        target (list): The rows of the model the weights go into.
        pairs (dict): Target layer index -> source layer index, for every matched layer.
    """

    source: list
    target: list
    pairs: dict[int, int]

    @property
    def identity(self) -> bool:
        """Whether every row matched its counterpart at the same index (ultralytics' key matching is then right)."""
        return len(self.source) == len(self.target) == len(self.pairs) and all(j == i for j, i in self.pairs.items())

    @property
    def new(self) -> list[int]:
        """Target layers without a counterpart in the checkpoint."""
        return [j for j in range(len(self.target)) if j not in self.pairs]

    @property
    def unused(self) -> list[int]:
        """Checkpoint layers without a counterpart in the target."""
        used = set(self.pairs.values())
        return [i for i in range(len(self.source)) if i not in used]

    def placement(self) -> list[int | None]:
        """For each target layer, the index of its source layer, or None for a new one."""
        return [self.pairs.get(j) for j in range(len(self.target))]

    def rename(self, state_dict: Mapping) -> dict:
        """The source ``state_dict`` under the target's keys: matched layers renumbered, unmatched ones left out."""
        target_of = {i: j for j, i in self.pairs.items()}
        renamed = {}
        for key, value in state_dict.items():
            layer = _LAYER_KEY.fullmatch(key)
            if not layer:
                renamed[key] = value
            elif int(layer[1]) in target_of:
                renamed[f"model.{target_of[int(layer[1])]}.{layer[2]}"] = value
        return renamed


def align(source: list, target: list, key: Callable = lambda row: row) -> Alignment:
    """Align two YAML row lists (``d["backbone"] + d["head"]``) by structure.

    Args:
        source (list): The checkpoint model's rows.
        target (list): The rows of the model the weights go into.
        key (Callable): Maps a row to the ``[from, repeats, module, args]`` that is compared, e.g. to give a module
            and the upstream module it adopts one name.

    Returns:
        (Alignment): The matched layers; rows whose absolute ``from`` indices do not renumber to their counterpart's
            are left unmatched.
    """
    keyed_source, keyed_target = [list(key(r)) for r in source], [list(key(r)) for r in target]
    pairs = _lcs(keyed_source, keyed_target)
    while mismatched := [j for j in pairs if not _inputs_match(keyed_source, keyed_target, pairs, j)]:
        for j in mismatched:
            del pairs[j]
    return Alignment(list(source), list(target), pairs)


def _spans(pairs: list[tuple[int, int]]) -> str:
    """'3-22 -> 4-23' style runs of (source, target) pairs that moved by the same offset."""
    runs: list[list[tuple[int, int]]] = []
    for i, j in sorted(pairs):
        if runs and i == runs[-1][-1][0] + 1 and j - i == runs[-1][-1][1] - runs[-1][-1][0]:
            runs[-1].append((i, j))
        else:
            runs.append([(i, j)])
    return ", ".join(
        f"{r[0][0]} -> {r[0][1]}" if len(r) == 1 else f"{r[0][0]}-{r[-1][0]} -> {r[0][1]}-{r[-1][1]}" for r in runs
    )


@dataclass(frozen=True)
class Report:
    """What a structural transfer moved.

    Args:
        alignment (Alignment): The layer alignment used.
        transferred (list): Target keys that received a checkpoint tensor.
        total (int): Tensors in the target model.
        source_total (int): Tensors in the checkpoint model.
        mismatched (dict): Target layer -> (tensors left as they were because of a shape mismatch, tensors matched
            by name in that layer).
    """

    alignment: Alignment
    transferred: list[str]
    total: int
    source_total: int
    mismatched: dict[int, tuple[int, int]]

    def summary(self) -> str:
        """One line: tensors transferred, layers renumbered, new, skipped because of a shape mismatch, unused."""
        a = self.alignment

        def named(rows, indices):
            return ", ".join(f"{i} {rows[i][2]}" for i in indices) or "none"

        moved = [(i, j) for j, i in a.pairs.items() if i != j]
        mismatch = ", ".join(f"{j} {a.target[j][2]} ({bad} of {n} items)" for j, (bad, n) in self.mismatched.items())
        return (
            f"Transferred {len(self.transferred)}/{self.total} items from pretrained weights, matching layers by "
            f"structure ({len(self.transferred)} of the checkpoint's {self.source_total}): "
            f"renumbered {_spans(moved) or 'none'}; new: {named(a.target, a.new)}; "
            f"shape mismatch: {mismatch or 'none'}; checkpoint layers not used: {named(a.source, a.unused)}"
        )


def report(alignment: Alignment, source_state: Mapping, target_state: Mapping) -> Report:
    """Compare the checkpoint's tensors, renamed by ``alignment``, with the target's: what transfers, what does not.

    A tensor transfers when the target has its renamed key with the same shape.
    """
    renamed = alignment.rename(source_state)
    transferred, mismatched = [], {}
    for key, value in renamed.items():
        if key in target_state and tuple(value.shape) == tuple(target_state[key].shape):
            transferred.append(key)
        elif key in target_state and (layer := _LAYER_KEY.fullmatch(key)):
            mismatched.setdefault(int(layer[1]), []).append(key)
    counts = {
        j: (len(keys), sum(k.startswith(f"model.{j}.") and k in target_state for k in renamed))
        for j, keys in sorted(mismatched.items())
    }
    return Report(alignment, transferred, len(target_state), len(source_state), counts)
