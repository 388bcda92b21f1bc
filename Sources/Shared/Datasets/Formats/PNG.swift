import Core
import CPNG
import Foundation

/// PNG reading and writing through libpng's simplified API.
///
/// Reading gives grayscale samples: 8-bit files as 0...255, 16-bit files as 0...65535
/// (unchanged; libpng treats 16-bit data as linear). Colour files are converted to
/// grayscale luminance by libpng.
public enum PNG {
    /// A decoded grayscale image.
    public struct Gray: Sendable, Equatable {
        public var width: Int
        public var height: Int
        /// 8 or 16.
        public var bitDepth: Int
        /// Row-major samples, 0...255 or 0...65535.
        public var samples: [UInt16]
        /// True if the file stored colour (now converted to luminance).
        public var wasColor: Bool
    }

    // png.h's PNG_FORMAT_* values (its derived macros do not import into Swift).
    private static let formatGray = 0, formatRGB = 2, formatLinearY = 4

    /// Largest width or height accepted when reading.
    public static let maximumSide = 16_384

    public static func read(path: String) throws(DataError) -> Gray {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "no such file or not readable")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<memory>") throws(DataError) -> Gray {
        guard data.count >= 8, data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
            throw .invalid(path: path, reason: "not a PNG file (wrong signature)")
        }
        let bytes = [UInt8](data)
        // libpng keeps the input pointer from begin_read and reads image data in finish_read,
        // so both calls must happen while the buffer is pinned.
        let result: Result<Gray, DataError> = bytes.withUnsafeBytes { input in
            Result { () throws(DataError) -> Gray in try decodePinned(input, path: path) }
        }
        return try result.get()
    }

    private static func decodePinned(_ input: UnsafeRawBufferPointer, path: String) throws(DataError) -> Gray {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_memory(&image, input.baseAddress, input.count) != 0 else {
            throw .invalid(path: path, reason: "corrupt PNG: \(message(image))")
        }
        defer { png_image_free(&image) }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width <= maximumSide, height <= maximumSide else {
            throw .invalid(path: path, reason: "image size \(width)x\(height) is out of range")
        }
        let sixteen = image.format & png_uint_32(formatLinearY) != 0
        let wasColor = image.format & png_uint_32(formatRGB) != 0
        image.format = png_uint_32(sixteen ? formatLinearY : formatGray)
        var samples = [UInt16](repeating: 0, count: width * height)
        let ok: Int32
        if sixteen {
            // The row stride is in components (16-bit samples here), not bytes.
            ok = samples.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, png_int_32(width), nil)
            }
        } else {
            var row = [UInt8](repeating: 0, count: width * height)
            ok = row.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, png_int_32(width), nil)
            }
            for i in row.indices { samples[i] = UInt16(row[i]) }
        }
        guard ok != 0 else { throw .invalid(path: path, reason: "corrupt PNG data: \(message(image))") }
        return Gray(width: width, height: height, bitDepth: sixteen ? 16 : 8, samples: samples, wasColor: wasColor)
    }

    private static func message(_ image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Encodes 8-bit grayscale (channels 1) or RGB (channels 3) pixels.
    public static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws(DataError) -> Data {
        precondition(channels == 1 || channels == 3, "PNG writer takes 1 or 3 channels")
        precondition(pixels.count == width * height * channels, "pixel count mismatch")
        return try encodeRaw(width: width, height: height,
                             format: png_uint_32(channels == 3 ? formatRGB : formatGray),
                             rowComponents: width * channels, pixels: pixels.withUnsafeBytes { Array($0) })
    }

    /// Encodes 16-bit grayscale samples (written linear, values unchanged on reading).
    public static func encode16(width: Int, height: Int, samples: [UInt16]) throws(DataError) -> Data {
        precondition(samples.count == width * height, "sample count mismatch")
        return try encodeRaw(width: width, height: height, format: png_uint_32(formatLinearY),
                             rowComponents: width, pixels: samples.withUnsafeBytes { Array($0) })
    }

    private static func encodeRaw(width: Int, height: Int, format: png_uint_32, rowComponents: Int, pixels: [UInt8])
        throws(DataError) -> Data
    {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        image.width = png_uint_32(width)
        image.height = png_uint_32(height)
        image.format = format
        var size: png_alloc_size_t = 0
        // First call measures, second writes.
        _ = pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, png_int_32(rowComponents), nil) }
        guard size > 0 else { throw .invalid(path: "<png>", reason: "cannot encode: \(message(image))") }
        var out = [UInt8](repeating: 0, count: Int(size))
        let ok = out.withUnsafeMutableBytes { dst in
            pixels.withUnsafeBytes { png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, png_int_32(rowComponents), nil) }
        }
        guard ok != 0 else { throw .invalid(path: "<png>", reason: "cannot encode: \(message(image))") }
        return Data(out.prefix(Int(size)))
    }

    /// Writes 8-bit gray or RGB pixels to a file, atomically.
    public static func write(path: String, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws(DataError) {
        let data = try encode(width: width, height: height, channels: channels, pixels: pixels)
        do { try AtomicFile.write(data, to: path) } catch { throw .unreadable(path: path, reason: "cannot write: \(error)") }
    }
}
