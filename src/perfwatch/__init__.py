"""perfwatch: keeps production ML models honest without waiting for labels."""

__version__ = "0.1.0"
