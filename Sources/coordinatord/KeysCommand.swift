import ArgumentParser
import CoordinatorDaemon
import Foundation

/// `coordinatord keys generate`: an Ed25519 key pair for the trust file (PROTOCOL.md section 10).
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Ed25519 keys for signed messages (--trust).",
        subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new private key (mode 0600) and print the principal's line for the trust file.")

        @Option(help: "The principal's id: the agent_id or user_id it signs as.") var id: String
        @Option(help: "Where to write the private key (base64 of the 32-byte seed); an existing file is not overwritten.") var out: String
        @Option(help: "A role to put in the printed line (agent, approver, reader); repeatable.") var role: [String] = []

        func validate() throws {
            // The daemon would refuse the printed line: say so before a key is made for it.
            guard Trust.isPrincipalID(id) else {
                throw ValidationError("--id: a principal id is 1-128 bytes of A-Z a-z 0-9 @ . _ + - (no ':')")
            }
            for name in role where Principal.Role(rawValue: name) == nil {
                throw ValidationError("--role: unknown role \"\(name)\" (agent, approver, reader)")
            }
        }

        func run() throws {
            do {
                let key = try SigningKeyFile.generate(path: out)
                print(SigningKeyFile.trustEntry(id: id, key: key, roles: role))
                FileHandle.standardError.write(Data((
                    "private key written to \(out) (mode 0600); add the line above under \"principals\" in the trust file"
                    + (role.isEmpty ? ", with its roles" : "") + "\n").utf8))
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}
