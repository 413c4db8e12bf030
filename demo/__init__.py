"""The demo and its simulated annotators: procedural scenes, caption checks, the `demo`,
`screenshots` and `simulate_annotators` commands.

An app apart from the product so that a production process never loads it: settings
install it only with PARITY_DEMO (on by default in development and tests, off in production).
"""
