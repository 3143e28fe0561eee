//! The I/O shell: the only module with sockets, the clock, threads and signals.
