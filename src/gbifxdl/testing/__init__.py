"""A local GBIF: the occurrence download API, species match, and image hosts, on loopback.

Used by gbifxdl's tests, its benchmarks and ``gbifxdl demo``. Nothing here sends traffic
anywhere but 127.0.0.0/8.

- :mod:`gbifxdl.testing.universe`     a seeded synthetic universe of taxa and occurrences
- :mod:`gbifxdl.testing.dwca`         writes GBIF-shaped Darwin Core Archives, streaming
- :mod:`gbifxdl.testing.gbif_server`  the GBIF API emulator (downloads, species match)
- :mod:`gbifxdl.testing.image_hosts`  image hosts with deterministic fault injection
"""
