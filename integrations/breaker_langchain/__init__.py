"""breaker_langchain: placeholder until the plugin lands."""
