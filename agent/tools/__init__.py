"""Developer tools: binding generation and YANG lint."""
