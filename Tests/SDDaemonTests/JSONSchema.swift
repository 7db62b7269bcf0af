import Foundation

/// A JSON value as parsed, with booleans and numbers kept apart (JSONDecoder is strict about both).
indirect enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}

/// The part of JSON Schema the API document uses: $ref, type, enum, required, properties,
/// additionalProperties (false or a schema), items, oneOf.
struct SchemaValidator {
    let document: JSONValue

    func resolve(_ schema: JSONValue) -> JSONValue {
        guard let ref = schema["$ref"]?.string, ref.hasPrefix("#/") else { return schema }
        var node = document
        for part in ref.dropFirst(2).split(separator: "/") { node = node[String(part)] ?? .null }
        return resolve(node)
    }

    /// What is wrong with `value` (empty when it conforms), each with where it is.
    func errors(_ value: JSONValue, _ given: JSONValue, at path: String = "$") -> [String] {
        let schema = resolve(given)
        if let options = schema["oneOf"]?.arrayValue {
            let fits = options.filter { errors(value, $0, at: path).isEmpty }
            return fits.isEmpty ? ["\(path): matches none of the oneOf schemas"] : []
        }
        if let allowed = schema["enum"]?.arrayValue, !allowed.contains(value) {
            return ["\(path): \(value) is not one of \(allowed)"]
        }
        switch (schema["type"]?.string, value) {
        case (nil, _), ("string", .string), ("boolean", .bool), ("integer", .integer), ("number", .integer),
            ("number", .number):
            return []
        case ("array", .array(let items)):
            guard let itemSchema = schema["items"] else { return [] }
            return items.enumerated().flatMap { errors($1, itemSchema, at: "\(path)[\($0)]") }
        case ("object", .object(let fields)):
            var found: [String] = []
            for key in schema["required"]?.arrayValue?.compactMap(\.string) ?? [] where fields[key] == nil {
                found.append("\(path): '\(key)' is required but missing")
            }
            let properties = schema["properties"]?.objectValue ?? [:]
            for (key, field) in fields.sorted(by: { $0.key < $1.key }) {
                if let propertySchema = properties[key] {
                    found += errors(field, propertySchema, at: "\(path).\(key)")
                } else if let extra = schema["additionalProperties"] {
                    if extra == .bool(false) {
                        found.append("\(path): '\(key)' is not in the document")
                    } else if extra != .bool(true) {
                        found += errors(field, extra, at: "\(path).\(key)")
                    }
                }
            }
            return found
        default:
            return ["\(path): \(value) is not of type \(schema["type"]?.string ?? "?")"]
        }
    }
}
