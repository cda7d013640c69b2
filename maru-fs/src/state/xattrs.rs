//! Extended attributes: synthesised (`maru_proto::xattr`) and the writer's `user.*`.

use super::*;

impl State {
    /// Value of xattr `name` on `ino`.
    pub fn getxattr(&mut self, ino: INodeNo, name: &OsStr) -> Result<Vec<u8>, Errno> {
        let ino = ino.0;
        let pins = if name.as_bytes() == xattr::PINS.as_bytes() {
            self.pins_of(ino)
        } else {
            0
        };
        if let Some(p) = self.pool_nodes.get(&ino) {
            if let Some(v) = p
                .store
                .devdax_device()
                .and_then(|dev| xattr::devdax_value(name, dev, None))
            {
                return Ok(v);
            }
            if let Some(socket) = self.lend_socket_of(p) {
                if name.as_bytes() == xattr::LEND_SOCKET.as_bytes() {
                    return Ok(socket.as_os_str().as_bytes().to_vec());
                }
            }
            return xattr::pool_value(name, &p.cfg, p.used, p.online).ok_or(Errno::ENODATA);
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENODATA)?;
        let pool = self.pool_nodes.get(&c.pool);
        let node = pool.and_then(|p| p.cfg.node);
        if let Some(v) = xattr::chunk_value(name, c.phase, pins, node, c.created) {
            return Ok(v);
        }
        if let Some((p, dev)) = pool.and_then(|p| Some((p, p.store.devdax_device()?))) {
            // The open chunk's own extent, else (closed) the one its name has.
            let extent = c
                .file
                .as_deref()
                .and_then(ChunkFile::devdax_extent)
                .or_else(|| p.store.devdax_extent(c.name.as_deref()?));
            if let Some(v) = xattr::devdax_value(name, dev, extent) {
                return Ok(v);
            }
        }
        c.xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or(Errno::ENODATA)
    }

    /// NUL-separated xattr names of `ino`.
    pub fn listxattr(&self, ino: INodeNo) -> Vec<u8> {
        let ino = ino.0;
        let devdax = |pool: u64| {
            self.pool_nodes
                .get(&pool)
                .is_some_and(|p| p.store.devdax_device().is_some())
        };
        if self.pool_nodes.contains_key(&ino) {
            let lent = self
                .pool_nodes
                .get(&ino)
                .and_then(|p| self.lend_socket_of(p))
                .is_some();
            let extra: &[&str] = if devdax(ino) {
                xattr::DEVDAX_POOL_NAMES
            } else if lent {
                xattr::LEND_POOL_NAMES
            } else {
                &[]
            };
            return xattr::names(xattr::POOL_NAMES, extra.iter().map(OsStr::new));
        }
        match self.chunks.get(&ino) {
            Some(c) => {
                let extra: &[&str] = if devdax(c.pool) {
                    xattr::DEVDAX_CHUNK_NAMES
                } else {
                    &[]
                };
                xattr::names(
                    xattr::CHUNK_NAMES,
                    extra
                        .iter()
                        .map(OsStr::new)
                        .chain(c.xattrs.iter().map(|(n, _)| n.as_os_str())),
                )
            }
            None => Vec::new(),
        }
    }

    /// Sets (or with `value == None` removes) a writer's `user.*` xattr on a staging chunk.
    pub fn setxattr(
        &mut self,
        ino: INodeNo,
        name: &OsStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<(), Errno> {
        let ino = ino.0;
        let Some(c) = self.chunks.get_mut(&ino) else {
            return Err(if self.pool_nodes.contains_key(&ino) || ino == ROOT {
                Errno::EPERM
            } else {
                Errno::ENOENT
            });
        };
        if !name.as_bytes().starts_with(b"user.") {
            return Err(Errno::ENOTSUP);
        }
        if xattr::is_reserved(name) || c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let pos = c.xattrs.iter().position(|(n, _)| n == name);
        match value {
            None => {
                let pos = pos.ok_or(Errno::ENODATA)?;
                if let Some(f) = &c.file {
                    f.set_xattr(name, None).map_err(|e| errno_of(&e))?;
                }
                c.xattrs.remove(pos);
            }
            Some(value) => {
                if flags & libc::XATTR_CREATE != 0 && pos.is_some() {
                    return Err(Errno::EEXIST);
                }
                if flags & libc::XATTR_REPLACE != 0 && pos.is_none() {
                    return Err(Errno::ENODATA);
                }
                let others: usize = c
                    .xattrs
                    .iter()
                    .filter(|(n, _)| n != name)
                    .map(|(n, v)| n.len() + v.len())
                    .sum();
                if others + name.len() + value.len() > xattr::USER_XATTR_LIMIT {
                    return Err(Errno::ENOSPC);
                }
                if let Some(f) = &c.file {
                    f.set_xattr(name, Some(value)).map_err(|e| errno_of(&e))?;
                }
                match pos {
                    Some(i) => c.xattrs[i].1 = value.to_vec(),
                    None => c.xattrs.push((name.to_os_string(), value.to_vec())),
                }
            }
        }
        Ok(())
    }
}
