"""A fuzzing run's outcomes, counted by mutation kind and verdict, as the markdown tables of docs/robustness.md."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from cspdet.research.report import markdown_table
from tools.fuzz.mutations import KINDS
from tools.fuzz.oracle import FINDINGS, Outcome


@dataclass
class FuzzReport:
    """Outcomes of a run, by mutation kind; ``trained``: distinct training inputs trained (None: parsing and scoring
    only)."""

    outcomes: list
    trained: int | None = None

    def counts(self) -> dict:
        """{kind: Counter of verdicts}, plus 'all'."""
        table = {kind: Counter() for kind in KINDS}
        for o in self.outcomes:
            table[o.mutant.kind][o.verdict] += 1
        table["all"] = sum(table.values(), Counter())
        return table

    def findings(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict in FINDINGS]

    def errors(self, top: int = 12) -> list[tuple[str, int]]:
        """The most frequent rejection messages, with the file, record numbers, ids and values generalised."""
        generalise = [
            (r"^.*?: ", ""),
            (r"\[\d+\]", "[i]"),
            (r" \(id [^)]*\)", ""),
            (r", got .*$", ""),
            (r"'(\w+)' \S+ is not in", r"'\1' ... is not in"),
            (r"'(\w+)' .* is a duplicate of", r"'\1' ... is a duplicate of"),
            (r" \(\d+ of \d+ annotations\)", ""),
            (r"line \d+ column \d+ \(char \d+\)", "line L column C"),
        ]
        messages = []
        for o in self.outcomes:
            if o.verdict == "rejected":
                message = o.detail
                for pattern, replacement in generalise:
                    message = re.sub(pattern, replacement, message)
                messages.append(message)
        return Counter(messages).most_common(top)


def fuzz_tables(report: FuzzReport) -> str:
    """The report as markdown: outcomes per mutation kind, the most frequent rejections and every finding."""
    counts = report.counts()
    rows = [
        [kind, sum(c.values()), c["works"], c["rejected"], c["stopped"], sum(c[v] for v in FINDINGS)]
        for kind, c in counts.items()
    ]
    rows[-1] = [f"**{v}**" for v in rows[-1]]
    lines = [
        "Each mutant was parsed for training and for scoring, and scored against pycocotools"
        + (
            f"; each that passed also trained one step and was scored by the final validation ({report.trained} "
            "distinct training inputs)."
            if report.trained is not None
            else "."
        ),
        "",
        markdown_table(
            ["mutation", "mutants", "work", "rejected, naming file and field", "stopped before training", "findings"],
            rows,
        ),
        "",
        "Most frequent rejections (record numbers, ids and values left out):",
        "",
        markdown_table(["error", "mutants"], [[f"`{e}`", n] for e, n in report.errors()]),
    ]
    findings = report.findings()
    if findings:
        lines += ["", f"Findings ({len(findings)}):", ""]
        rows = [
            [
                o.mutant.index,
                o.mutant.kind,
                o.verdict,
                f"`{o.mutant.what[:100]}`",
                f"`{(o.detail.strip().splitlines() or [''])[-1][:160]}`",
            ]
            for o in findings[:30]
        ]
        lines.append(markdown_table(["mutant", "kind", "verdict", "mutation", "error"], rows))
    return "\n".join(lines).encode("utf-8", "backslashreplace").decode()  # mutations may hold lone surrogates
