"""Actions: plain functions whose parameters are a pydantic model read from the signature.

Adding an action is one function in one module of this package (registered by
`agent.actions.registry.action`)::

    class StartParams(BaseModel):
        name: ContainerName

    @action
    def start_container(params: StartParams, ctx: ActionContext) -> str:
        ...

The rule loader validates a rule's action names and parameters against this
registry, so a rule can only name what exists, with parameters of the right type.
"""

from __future__ import annotations

from agent.actions.registry import REGISTRY, ActionSpec


def registry() -> dict[str, ActionSpec]:
    """All actions, with their modules imported (each registers itself)."""
    from agent.actions import (  # noqa: F401
        bots,
        client_config,
        deploys,
        docker_actions,
        gateway,
        host,
        hummingbot,
        naming,
        recreate,
    )

    return REGISTRY
