"""The attribute and metric names breaker emits, in one place.

Why our own module: the GenAI names in ``opentelemetry-semantic-conventions``
are marked deprecated there (they are moving to a separate GenAI package),
the cost attributes are only a proposal, and the library must depend on
``opentelemetry-api`` alone. Plain strings cost nothing to import and make
the names greppable. Names follow the GenAI semantic conventions as of
semconv 0.66b2; ``breaker.*`` names are ours.
"""

from __future__ import annotations

# --- GenAI semantic conventions: spans -------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"

# The open cost proposal (not yet in a released convention).
GEN_AI_USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE = "gen_ai.usage.cost.source"

# Attributes that carry prompt or completion text: dropped from anything an
# adapter passes through ``Call.attrs`` unless the user opts in.
CONTENT_ATTRIBUTES = frozenset({
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
})

# --- GenAI semantic conventions: metrics ------------------------------------
GEN_AI_CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"
GEN_AI_CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE_BUCKETS = tuple(4**i for i in range(14))  # 1, 4, 16, … 67108864
DURATION_BUCKETS = tuple(round(0.01 * 2**i, 2) for i in range(14))  # 0.01, 0.02, … 81.92

# --- breaker's own names ----------------------------------------------------
BREAKER_SESSION = "breaker.session"
BREAKER_FEATURE = "breaker.feature"
BREAKER_USER = "breaker.user"
BREAKER_TAG_PREFIX = "breaker.tag."
BREAKER_COST_USD = "breaker.cost_usd"
BREAKER_BUDGET_REMAINING_USD = "breaker.budget.remaining_usd"
BREAKER_DEGRADED = "breaker.degraded"
BREAKER_REQUESTED_MODEL = "breaker.requested_model"
BREAKER_TRIPPED = "breaker.tripped"
BREAKER_TRIP_REASON = "breaker.trip.reason"
BREAKER_SCOPE = "breaker.scope"
BREAKER_KEY = "breaker.key"
BREAKER_MESSAGE = "breaker.message"
BREAKER_SPENT_USD = "breaker.spent_usd"
BREAKER_LIMIT_USD = "breaker.limit_usd"
BREAKER_FRACTION = "breaker.fraction"
BREAKER_EVENT_PREFIX = "breaker."  # span events are named breaker.<Event.kind>

BREAKER_COST = "breaker.cost"
BREAKER_TRIPS = "breaker.trips"
