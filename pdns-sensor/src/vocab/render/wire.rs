//! A bounded cursor over rdata in canonical wire form.
//!
//! Every read checks the bytes are there; a short or inconsistent rdata is
//! a [`Malformed`] error, never a panic, so the caller can fall back to the
//! generic form. Names are read uncompressed (stored rdata is canonical).

/// The rdata does not have the layout its type requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Malformed;

pub(super) type Result<T> = std::result::Result<T, Malformed>;

pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Malformed)?;
        let out = self.data.get(self.pos..end).ok_or(Malformed)?;
        self.pos = end;
        Ok(out)
    }

    /// Everything not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.pos.min(self.data.len())..];
        self.pos = self.data.len();
        out
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An uncompressed name (labels up to the root label), at most 255
    /// bytes as DNS allows.
    pub(super) fn name(&mut self) -> Result<&'a [u8]> {
        let start = self.pos;
        loop {
            let len = usize::from(self.u8()?);
            if len == 0 {
                break;
            }
            if len > 63 {
                return Err(Malformed);
            }
            self.take(len)?;
        }
        if self.pos - start > 255 {
            return Err(Malformed);
        }
        Ok(&self.data[start..self.pos])
    }

    /// A `<character-string>`: a length byte and that many bytes.
    pub(super) fn char_string(&mut self) -> Result<&'a [u8]> {
        let len = usize::from(self.u8()?);
        self.take(len)
    }

    /// Succeeds only if every byte was read: rdata with trailing bytes is
    /// not the type it claims to be.
    pub(super) fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16(), Ok(1));
        assert_eq!(r.u16(), Err(Malformed));
        assert_eq!(r.u8(), Ok(2));
        assert!(r.finish().is_ok());
        assert_eq!(Reader::new(&[3, b'a']).name(), Err(Malformed));
        assert_eq!(Reader::new(&[64]).name(), Err(Malformed));
        assert_eq!(Reader::new(&[1, b'a', 0]).name(), Ok(&[1, b'a', 0][..]));
        assert_eq!(Reader::new(&[2, b'a']).char_string(), Err(Malformed));
        let long: Vec<u8> = std::iter::repeat_n([63u8; 64], 5)
            .flat_map(|mut l| {
                l[1..].fill(b'x');
                l
            })
            .chain([0])
            .collect();
        assert_eq!(Reader::new(&long).name(), Err(Malformed));
    }
}
