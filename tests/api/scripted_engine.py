"""The embedded engine's chat surface without a model: a Qwen3 template, prompts
rendered and "tokenized" (4 characters a token), answers scripted by a subclass."""

from __future__ import annotations

from luodi.config import EngineSettings
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.types import ModelInfo, RenderedPrompt, TemplateMetadata

QWEN3_MARKERS = ("<|im_start|>", "<|im_end|>")


class ScriptedChatEngine(LlamaCppEngine):
    """Renders chats as the embedded engine would; a subclass says what it answers."""

    def __init__(self, name: str) -> None:
        super().__init__(EngineSettings())
        self._template = TemplateMetadata(
            configured="qwen3", gguf_template=None, architecture="qwen3"
        )
        self._info = ModelInfo(name=name, context_length=4096)
        self._max_model_len = 4096
        self.prompts: list[str] = []
        """Every rendered prompt, in order."""

    def tokenize_chat(self, prompt: str | RenderedPrompt) -> list[int]:
        text = prompt if isinstance(prompt, str) else prompt.text
        self.prompts.append(text)
        return list(range(len(text) // 4 + 1))

    def spells_control(self, text: str) -> bool:
        return any(marker in text for marker in QWEN3_MARKERS)

    def health(self) -> dict[str, object]:
        return {"status": "ok"}
