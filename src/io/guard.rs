//! Checks an npz archive's npy headers before ndarray-npy reads them: it allocates what a
//! header's shape asks for, so a file claiming 10¹¹ elements would abort the process.
//! Every array must fit in the bytes its zip entry holds, and no entry may claim to
//! inflate beyond what deflate can (so a small file cannot ask for a huge allocation).

use std::io::{Read, Seek};

/// Deflate's largest possible expansion is ~1032:1; a little above it.
const MAX_INFLATION: u64 = 1100;

/// Refuses an archive whose entries claim more data than they can hold; returns the names
/// of the arrays that hold Python objects (pickled dicts, lists), which gradcheck never
/// reads.
pub(super) fn check_archive<R: Read + Seek>(reader: R) -> Result<Vec<String>, String> {
    let mut objects = Vec::new();
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|e| format!("not an npz (zip) archive: {e}"))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        let name = entry.name().trim_end_matches(".npy").to_string();
        let (declared, compressed) = (entry.size(), entry.compressed_size());
        if declared > compressed.saturating_mul(MAX_INFLATION).max(1 << 16) {
            return Err(format!(
                "array '{name}' claims {declared} bytes from {compressed} compressed"
            ));
        }
        // At most the header, and never to the entry's end (which would make the zip crate
        // verify the checksum: ndarray-npy, reading only what the shape needs, does not).
        let mut head = Vec::new();
        (&mut entry)
            .take(declared.min(12 + u64::from(u16::MAX)))
            .read_to_end(&mut head)
            .map_err(|e| format!("array '{name}': {e}"))?;
        let Some((header, header_bytes)) = npy_header(&head) else {
            continue; // not an npy file: ndarray-npy names the problem
        };
        let Some(item) = item_size(header) else {
            // A type gradcheck never reads (objects, strings…): refused by name if it is
            // one of the arrays the check needs, ignored otherwise.
            if header.contains("'|O'") {
                objects.push(name);
            }
            continue;
        };
        let Some(elements) = shape_elements(header) else {
            return Err(format!("array '{name}' has an unreadable npy header"));
        };
        let data = declared.saturating_sub(header_bytes);
        if elements.checked_mul(item).is_none_or(|bytes| bytes > data) {
            return Err(format!(
                "array '{name}' claims {elements} elements but its file holds {data} bytes of data"
            ));
        }
    }
    Ok(objects)
}

/// The text of the string array `name` (`<U…` or `|S…`, one element) in the npz archive
/// `reader` holds; `None` when there is no such array.
pub(super) fn string_array<R: Read + Seek>(
    reader: R,
    name: &str,
) -> Result<Option<String>, String> {
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|e| format!("not an npz (zip) archive: {e}"))?;
    let Ok(mut entry) = archive.by_name(&format!("{name}.npy")) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    (&mut entry)
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("array '{name}': {e}"))?;
    let bad = || {
        format!(
            "array '{name}' must be one string, like np.savez(..., {name}=\"loss=softmax l2=0.1\")"
        )
    };
    let (header, start) = npy_header(&bytes).ok_or_else(bad)?;
    let after = &header[header.find("'descr'").ok_or_else(bad)? + "'descr'".len()..];
    let open = after.find('\'').ok_or_else(bad)? + 1;
    let descr = &after[open..open + after[open..].find('\'').ok_or_else(bad)?];
    if shape_elements(header) != Some(1) {
        return Err(bad());
    }
    let data = &bytes[start as usize..];
    let text = match descr.as_bytes() {
        [b'<', b'U', ..] => data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .take_while(|&c| c != 0)
            .map(|c| char::from_u32(c).ok_or_else(bad))
            .collect::<Result<String, String>>()?,
        [b'|', b'S', ..] => {
            let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            String::from_utf8(data[..end].to_vec()).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    Ok(Some(text))
}

/// Adds to the npz archive at `path` a one-element string array `name` holding `text`,
/// as numpy writes `np.array(text)` (`<U`, UTF-32).
pub(super) fn append_string_array(
    path: &std::path::Path,
    name: &str,
    text: &str,
) -> Result<(), String> {
    use std::io::Write;
    let chars: Vec<char> = text.chars().collect();
    let dict = format!(
        "{{'descr': '<U{}', 'fortran_order': False, 'shape': (), }}",
        chars.len().max(1)
    );
    // Magic, version 1.0, header length, the dict padded with spaces to 64 bytes and a newline.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(((total - 10) as u16).to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes.resize(total - 1, b' ');
    bytes.push(b'\n');
    for c in &chars {
        bytes.extend((*c as u32).to_le_bytes());
    }
    if chars.is_empty() {
        bytes.extend([0u8; 4]);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let mut zip = zip::ZipWriter::new_append(file).map_err(|e| e.to_string())?;
    zip.start_file(
        format!("{name}.npy"),
        zip::write::SimpleFileOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    zip.write_all(&bytes).map_err(|e| e.to_string())?;
    zip.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// The header text of an npy file and the bytes before its data, when `head` starts with
/// a complete one (versions 1, 2 and 3).
fn npy_header(head: &[u8]) -> Option<(&str, u64)> {
    let rest = head.strip_prefix(b"\x93NUMPY")?;
    let (len, start): (usize, usize) = match rest.first()? {
        1 => (
            usize::from(u16::from_le_bytes([*rest.get(2)?, *rest.get(3)?])),
            10,
        ),
        2 | 3 => (
            u32::from_le_bytes(rest.get(2..6)?.try_into().ok()?) as usize,
            12,
        ),
        _ => return None,
    };
    let text = std::str::from_utf8(head.get(start..start.checked_add(len)?)?).ok()?;
    Some((text, (start + len) as u64))
}

/// Product of the `'shape': (…)` tuple; `None` when it is missing or malformed.
fn shape_elements(header: &str) -> Option<u64> {
    let after = &header[header.find("'shape'")? + "'shape'".len()..];
    let open = after.find('(')?;
    let close = after[open..].find(')')? + open;
    after[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .try_fold(1u64, |acc, d| acc.checked_mul(d.parse::<u64>().ok()?))
}

/// Bytes per element from `'descr': '<f8'` and the like; `None` when absent.
fn item_size(header: &str) -> Option<u64> {
    let after = &header[header.find("'descr'")? + "'descr'".len()..];
    let start = after.find('\'')? + 1;
    let end = after[start..].find('\'')? + start;
    let digits: String = after[start..end]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_item_sizes_are_read_from_headers() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
        assert_eq!(shape_elements(h), Some(6));
        assert_eq!(item_size(h), Some(8));
        assert_eq!(shape_elements("{'shape': (), }"), Some(1));
        assert_eq!(shape_elements("{'shape': (5,), }"), Some(5));
        assert_eq!(
            shape_elements("{'shape': (18446744073709551615, 2), }"),
            None
        );
        assert_eq!(item_size("{'descr': '|b1', }"), Some(1));
    }
}
