"""breaker_pydantic_ai: placeholder until the plugin lands."""
