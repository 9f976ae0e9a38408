"""What a worker exports about itself: metrics, traces, loop watchdog, structured logs."""
