"""Tests of cspdet.video (a package, so that its conftest never shadows the top-level one)."""
