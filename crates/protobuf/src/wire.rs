//! The protobuf wire format: a reader over `(tag, value)` records that never reads past its slice.

use crate::ProtobufError;

/// One record's payload, by wire type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    /// No Kubernetes field uses it; it is read only to be skipped.
    Fixed32,
    Len(&'a [u8]),
}

impl WireValue<'_> {
    pub(crate) fn wire_type_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "64-bit",
            WireValue::Fixed32 => "32-bit",
            WireValue::Len(_) => "length-delimited",
        }
    }
}

/// Iterates over the records of one message. Groups (wire types 3 and 4, unused by Kubernetes)
/// and malformed input end the iteration with an error.
#[derive(Debug)]
pub(crate) struct Records<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Records<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Records { data, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        read_varint(self.data, &mut self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len());
        let end = end.ok_or(ProtobufError::Truncated)?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn record(&mut self) -> Result<(u32, WireValue<'a>), ProtobufError> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3)
            .map_err(|_| ProtobufError::Malformed("field number out of range"))?;
        if tag == 0 {
            return Err(ProtobufError::Malformed("field number 0"));
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                WireValue::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| ProtobufError::Truncated)?,
                ))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Truncated)?;
                WireValue::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed32
            }
            _ => {
                return Err(ProtobufError::Malformed(
                    "unsupported wire type (groups are not used by Kubernetes)",
                ))
            }
        };
        Ok((tag, value))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u32, WireValue<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let record = self.record();
        if record.is_err() {
            // Stop after the first error: the rest of the slice cannot be framed.
            self.pos = self.data.len();
        }
        Some(record)
    }
}

/// Reads one base-128 varint at `*pos`, advancing it.
pub(crate) fn read_varint(data: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *data.get(*pos).ok_or(ProtobufError::Truncated)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(ProtobufError::Malformed("varint longer than 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError::Malformed("varint longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_framing() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0xac, 0x02], &mut pos).ok(), Some(300));
        let all_ones = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&all_ones, &mut 0).ok(), Some(u64::MAX));
        assert!(read_varint(&[0xff; 11], &mut 0).is_err());
        assert!(read_varint(&[0x80], &mut 0).is_err());
        // Field 1, length 5, but only 2 bytes follow.
        let records: Vec<_> = Records::new(&[0x0a, 0x05, b'a', b'b']).collect();
        assert!(matches!(
            records.as_slice(),
            [Err(ProtobufError::Truncated)]
        ));
        // Field 0 is invalid.
        assert!(Records::new(&[0x00, 0x00])
            .next()
            .is_some_and(|r| r.is_err()));
    }
}
