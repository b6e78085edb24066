"""breaker_openai_agents: placeholder until the plugin lands."""
