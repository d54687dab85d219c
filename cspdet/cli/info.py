"""Show the installed cspdet, ultralytics and torch, the supported range, each probe and what cspdet patched.

    cspdet info

Also where ultralytics puts datasets and runs (its settings), and whether auto-load (the cspdet.pth start-up hook
that installs cspdet whenever ultralytics is imported) is on. Exit status 1 when a probe failed.
"""

from __future__ import annotations


def add_arguments(parser):
    pass


def run(args) -> int:
    import sys

    import torch
    import ultralytics
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    import _cspdet_hook
    import cspdet
    from cspdet.integration import compat, plugin
    from cspdet.patching import PATCHED

    plugin.install()  # already done by importing ultralytics; a no-op then
    status = compat.status()
    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "CPU"
    autoload = "on" if _cspdet_hook.enabled() else f"off ({_cspdet_hook.ENV_VAR}=0)"
    lines = [
        f"cspdet       {cspdet.__version__} ({cspdet.__path__[0]})",
        f"ultralytics  {status.release} ({'tested' if status.tested else 'NOT TESTED'}; {ultralytics.__path__[0]})",
        f"torch        {torch.__version__} ({cuda})",
        f"python       {sys.version.split()[0]}",
        f"supported    {compat.tested_range()}",
        f"auto-load    {autoload}",
        f"datasets     {SETTINGS['datasets_dir']}",
        f"runs         {SETTINGS['runs_dir']}",
        f"settings     {USER_CONFIG_DIR}",
        "",
        "probes (one per seam of cspdet.integration):",
    ]
    width = max(map(len, compat.SEAMS))
    for name, seam in compat.SEAMS.items():
        state = f"FAILED: {status.failed[name]}" if name in status.failed else "ok"
        lines.append(f"  {name:<{width}}  {state}  ({seam.provides})")
    lines += ["", "patched in ultralytics:", *(f"  {name}" for name in PATCHED or ["nothing"])]
    lines += ["", "features that need a recent ultralytics:"]
    lines += [f"  {'yes' if has else 'no '}  {name}" for name, has in compat.upstream_features().items()]
    print("\n".join(lines))
    return 1 if status.failed else 0
