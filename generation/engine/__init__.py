"""Pure PyTorch text-to-image engine: networks, schedules, samplers, training. No Django."""
