"""Reading corpus and sample files safely: sources yield records, images are validated.

Nothing here touches the database or storage; `generation.services` does the writes.
"""
