"""A minimal Django project that serves every Django row of the benchmark."""
