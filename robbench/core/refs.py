"""References to models as suites and component parameters name them: a zoo name, or an
architecture with a local checkpoint. Plain data (no torch), shared by the suite models and every
component that takes a model parameter.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

HEX = frozenset("0123456789abcdef")


class RobustBenchRef(BaseModel):
    """A RobustBench model-zoo entry, loaded through the optional ``robustbench`` package from a local copy:
    ``model_dir/<dataset>/<threat_model>/<name>.pt`` as RobustBench's ``load_model`` stores it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    dataset: Literal["cifar10", "cifar100", "imagenet"] = "cifar10"
    threat_model: Literal["Linf", "L2", "corruptions"] = "Linf"
    model_dir: str = "models"


class ModelRef(BaseModel):
    """A model: a zoo name, an architecture plus a local checkpoint, or a RobustBench model-zoo entry."""

    model_config = ConfigDict(extra="forbid")

    zoo: str | None = None
    robustbench: RobustBenchRef | None = None
    arch: str | None = None
    checkpoint: str | None = None
    sha256: str | None = None
    format: Literal["state_dict", "ncsnv2", "robustbench", "diffusers", "score_sde", "edm"] = "state_dict"
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        return {"zoo": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_kind(self) -> ModelRef:
        if sum(x is not None for x in (self.zoo, self.arch, self.robustbench)) != 1:
            raise ValueError("give one of: a zoo name, arch + checkpoint, or robustbench: {name: ...}")
        if self.arch is not None and self.checkpoint is None:
            raise ValueError("arch needs a checkpoint path")
        if self.sha256 is not None and (len(self.sha256) != 64 or any(c not in HEX for c in self.sha256.lower())):
            raise ValueError(
                f"sha256 {self.sha256!r} is not a SHA-256 digest (64 hex digits); compute it with `sha256sum FILE`"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``robustbench`` came later: left out while unset, so every earlier reference (and the cell ids and
        seeds derived from it) dumps exactly as before."""
        out: dict[str, Any] = handler(self)
        if out.get("robustbench", 0) is None:
            out.pop("robustbench")
        return out

    def identity(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
