"""Customer-service assistants: configured in YAML, served as ``support/<name>`` models.

An operator writes one file per assistant (intents with examples and actions); the
platform recognises intents (nearest examples, then the model), keeps sessions, answers
from knowledge bases with citations, fills slots and calls webhooks, and hands off to
humans, every turn through the gateway pipeline (docs/support.md).
"""

from luodi.apps.support.assistant import OUT_OF_SCOPE, Action, Assistant, Intent, Slot
from luodi.apps.support.catalog import AssistantCatalog
from luodi.apps.support.classifier import Classification, IntentModel
from luodi.apps.support.loading import AssistantFileError, load_assistant, parse_assistant
from luodi.apps.support.recognizer import IntentRecognizer

__all__ = [
    "OUT_OF_SCOPE",
    "Action",
    "Assistant",
    "AssistantCatalog",
    "AssistantFileError",
    "Classification",
    "Intent",
    "IntentModel",
    "IntentRecognizer",
    "Slot",
    "load_assistant",
    "parse_assistant",
]
