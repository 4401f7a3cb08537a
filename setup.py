"""Builds the optional native record builder of the ingest service.

Everything else is declared in pyproject.toml. The extension is optional: where no C compiler
or OpenSSL headers are found the install goes on, and ingest builds records with polars and
hashlib instead (the same bytes, about three times slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "services.ingest._records",
            sources=["services/ingest/_records.c"],
            libraries=["crypto"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
