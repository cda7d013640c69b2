//! maru-fs: the FUSE filesystem that shows each pool as a directory and each KV
//! chunk as a file whose pages are the pool's own (FUSE passthrough).
