"""breaker_litellm: placeholder until the plugin lands."""
