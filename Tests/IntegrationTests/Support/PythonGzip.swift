import Foundation

/// Python's own gzip module, an independent implementation for checking keel's gzip both ways.
enum PythonGzip {
    /// gzip.compress(bytes): a real .gz sibling for gzip_static tests.
    static func compress(_ bytes: [UInt8], in directory: String) throws -> [UInt8] {
        try run("compress", bytes, in: directory)
    }

    /// gzip.decompress(bytes): decodes what keel sent.
    static func decompress(_ bytes: [UInt8], in directory: String) throws -> [UInt8] {
        try run("decompress", bytes, in: directory)
    }

    /// zlib at `level`, window 15 as gzip (wbits 31), memLevel 8: the input, a sync flush if asked (what keel does
    /// once a file slice sent with sendfile is written), then the end of the stream. The byte-exact reference for
    /// keel's reused deflate states.
    static func zlibReference(_ bytes: [UInt8], level: Int, syncFlush: Bool, in directory: String) throws -> [UInt8] {
        let flush = syncFlush ? " + c.flush(zlib.Z_SYNC_FLUSH)" : ""
        return try run(
            "zlib", bytes, in: directory,
            script: "import zlib, sys; c = zlib.compressobj(\(level), zlib.DEFLATED, 31, 8); d = open(sys.argv[1], 'rb').read(); "
                + "sys.stdout.buffer.write(c.compress(d)\(flush) + c.flush())")
    }

    private static func run(_ function: String, _ bytes: [UInt8], in directory: String) throws -> [UInt8] {
        try run(
            function, bytes, in: directory,
            script: "import gzip, sys; sys.stdout.buffer.write(gzip.\(function)(open(sys.argv[1], 'rb').read()))")
    }

    private static func run(_ function: String, _ bytes: [UInt8], in directory: String, script: String) throws -> [UInt8] {
        let input = directory + "/python-gzip-\(function)-input"
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        let outputPath = input + ".out"
        try? FileManager.default.removeItem(atPath: outputPath)
        let python = try ChildProcess("/usr/bin/python3", ["-c", script, input], outputPath: outputPath, errorPath: "/dev/null")
        guard let code = python.waitForExit(seconds: 60) else { throw HarnessError("python gzip.\(function) did not finish in 60 s") }
        guard code == 0, let data = FileManager.default.contents(atPath: outputPath) else {
            throw HarnessError("python could not gzip.\(function) the body")
        }
        return Array(data)
    }
}
