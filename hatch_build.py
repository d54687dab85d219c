"""Build hook of cspdet's pyproject.toml: the project's dependencies, declared there under
``[tool.hatch.metadata.hooks.custom]`` (see the comment at ``dynamic`` for why they are not static)."""

from hatchling.metadata.plugin.interface import MetadataHookInterface


class CustomMetadataHook(MetadataHookInterface):
    def update(self, metadata: dict):
        metadata["dependencies"] = self.config["dependencies"]
