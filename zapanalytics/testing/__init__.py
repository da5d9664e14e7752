"""Test doubles that ship with the package, so tests, benchmarks and the demo share them.

:mod:`zapanalytics.testing.zaptec_fake` serves a Zaptec API dump over real HTTP on
127.0.0.1 with the cloud's paging, rate-limit, token and error behaviour.
"""
