"""The engine: data, training, evaluation and the job worker; no UI imports."""
