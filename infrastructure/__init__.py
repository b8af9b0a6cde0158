"""Infrastructure as code: CloudFormation templates for AWS and for the local stack.

- ``template.yaml`` - the whole system in one stack. Deployed to AWS with
  CloudFormation (``Target=aws``, docs/deploy.md) and provisioned into the
  local emulator by ``infrastructure.local`` (``Target=local``: the data plane
  only) - one source of truth for every resource name and property.
- ``bootstrap.yaml`` - what must exist before that stack: the bucket for the
  Lambda code and the consumer's image repository.

``load_template`` reads either into a dict with the intrinsic functions in
their JSON form, for the provisioner and the template tests.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BOOTSTRAP_PATH", "TEMPLATE_PATH", "load_template"]

TEMPLATE_PATH = Path(__file__).with_name("template.yaml")
BOOTSTRAP_PATH = Path(__file__).with_name("bootstrap.yaml")

# libyaml's parser when PyYAML has it: the template is ~2,000 lines and the pure
# Python parser takes ~0.6 s of every stack the tests provision.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """YAML loader that turns CloudFormation short tags into their JSON form.

    ``!Sub x`` becomes ``{"Fn::Sub": x}``; ``!Ref`` and ``!Condition`` keep their
    names (``{"Ref": x}``, ``{"Condition": x}``), as CloudFormation's JSON spells them.
    """


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)

_cache: dict[Path, tuple[int, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as a dict, intrinsic functions in their long ``Fn::`` form.

    Parsed once per file version; every call gets its own copy to change.
    """
    resolved = path.resolve()
    version = resolved.stat().st_mtime_ns
    with _cache_lock:
        cached = _cache.get(resolved)
        if cached is None or cached[0] != version:
            with resolved.open() as handle:
                parsed: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - safe loader
            cached = _cache[resolved] = (version, parsed)
    return copy.deepcopy(cached[1])
