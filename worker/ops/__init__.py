"""Operating the queues: the Python API (``api``) and the click CLI over it (``cli``)."""
