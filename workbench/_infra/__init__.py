"""Private infrastructure every floor may use: errors and notices, bounded and safe file reading, atomic
folders, memos, registries, process-wide settings, worker processes, and the one timing loop.

Nothing here knows about models, devices or studies; import it from anywhere in the package, never the
other way round. Not a public API: names here may change without notice.
"""
