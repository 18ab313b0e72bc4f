//! greenhub-redis: a Redis client for greenhub (filled in by the client work).
