import Foundation
import SDTestSupport
import Testing

/// Several real sd processes on one library at once.
struct ConcurrentProcessTests {
    /// Eight processes, each a different device, open the same not-yet-existing default library at once:
    /// one creates it, all succeed, all eight devices are recorded, and the database passes integrity_check.
    @Test func manyProcessesOpenOneLibraryAtOnce() async throws {
        let dir = try TemporaryDirectory(prefix: "sd-procs")
        let count = 8
        for round in 0..<3 {
            let statuses = try await withThrowingTaskGroup(of: SDBinary.Result.self) { group in
                for i in 0..<count {
                    let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config-\(i)"))
                    group.addTask { try sd.run(["library", "info", "--json"]) }
                }
                var results: [SDBinary.Result] = []
                for try await r in group { results.append(r) }
                return results
            }
            for r in statuses { #expect(r.status == 0, "round \(round): \(r.stderr)") }
        }
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config-0"))
        let info = try sd.run(["library", "info", "--check", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
        #expect(json?["devices"] as? Int == count)
        #expect(json?["integrity"] as? String == "ok")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("data")) == ["Default.sdlibrary"])
    }

    /// Processes racing to create the same library: exactly one wins, the rest are told it exists.
    @Test func exactlyOneCreatorWins() async throws {
        let dir = try TemporaryDirectory(prefix: "sd-create")
        let results = try await withThrowingTaskGroup(of: SDBinary.Result.self) { group in
            for i in 0..<6 {
                let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config-\(i)"))
                group.addTask { try sd.run(["library", "create", "Race"]) }
            }
            var results: [SDBinary.Result] = []
            for try await r in group { results.append(r) }
            return results
        }
        #expect(results.filter { $0.status == 0 }.count == 1)
        for r in results where r.status != 0 {
            #expect(r.status == 1)
            #expect(r.stderr.contains("already exists"))
        }
        // No half-made staging folders are left.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("data")) == ["Race.sdlibrary"])
    }
}
