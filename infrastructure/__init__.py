"""Infrastructure as code: one CloudFormation template for AWS and for the local stack.

``template.yaml`` is deployed to AWS with CloudFormation and provisioned
into the local emulator by ``infrastructure.local`` - one source of truth for
every resource name and property.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["TEMPLATE_PATH", "load_template"]

TEMPLATE_PATH = Path(__file__).with_name("template.yaml")


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags (``!Sub``) into ``Fn::`` maps."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
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


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as a dict, intrinsic functions in their long ``Fn::`` form."""
    with path.open() as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return loaded
