using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ComputeGrid.Exchange.Trading;

/// <summary>One journal record: a command as it started (<see cref="Done"/> false), or the ledger answers it got (true).</summary>
public sealed record JournalRecord(long Seq, bool Done, string Kind, long Timestamp, JsonNode? Args, JsonArray? Ledger);

/// <summary>
/// The exchange's own journal: an append-only file of the commands it ran, one JSON line each, each line
/// ending with the first 16 hex digits of SHA-256(previous digest ‖ line) so a torn or altered tail is
/// detected and truncated. Every command is written twice: when it starts (its arguments and timestamp) and
/// when it is done (every answer the ledger gave it). Replaying the journal over the same ledger rebuilds the
/// books, orders, leases and nodes exactly: a done command is replayed with its recorded answers (the ledger
/// is not asked again), and a command that started but never finished (a crash in the middle) is run again
/// against the ledger, whose idempotent transfer ids turn what already happened into "exists".
/// </summary>
public sealed class ExchangeJournal : IDisposable
{
    private readonly FileStream _file;
    private string _lastDigest = new('0', 16);

    /// <summary>The records read when the journal was opened (the history to replay).</summary>
    public IReadOnlyList<JournalRecord> Recovered { get; }

    /// <summary>Bytes of a torn or damaged tail dropped when the journal was opened.</summary>
    public long TruncatedBytes { get; }

    public ExchangeJournal(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        _file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1 << 16);
        var records = new List<JournalRecord>();
        long valid = 0;
        using (var reader = new StreamReader(_file, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, 1 << 16, leaveOpen: true))
        {
            string? line;
            long offset = 0;
            while ((line = reader.ReadLine()) is not null)
            {
                long next = offset + Encoding.UTF8.GetByteCount(line) + 1;
                if (next > _file.Length || !TryParse(line, out var record)) break;
                records.Add(record);
                offset = next;
                valid = next;
            }
        }
        TruncatedBytes = _file.Length - valid;
        if (TruncatedBytes > 0)
        {
            _file.SetLength(valid);
            _file.Flush(flushToDisk: true);
        }
        _file.Position = valid;
        Recovered = records;
    }

    private bool TryParse(string line, out JournalRecord record)
    {
        record = null!;
        int bar = line.LastIndexOf('|');
        if (bar < 0) return false;
        string body = line[..bar], digest = line[(bar + 1)..];
        if (Digest(_lastDigest, body) != digest) return false;
        try
        {
            var node = JsonNode.Parse(body)!.AsObject();
            record = new JournalRecord(node["seq"]!.GetValue<long>(), node["done"]!.GetValue<bool>(), node["kind"]!.GetValue<string>(),
                node["ts"]!.GetValue<long>(), node["args"]?.DeepClone(), node["ledger"]?.DeepClone().AsArray());
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            return false;
        }
        _lastDigest = digest;
        return true;
    }

    private static string Digest(string previous, string body) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(previous + body)))[..16];

    /// <summary>Appends a record and makes it durable before returning.</summary>
    public void Append(JournalRecord r)
    {
        var node = new JsonObject
        {
            ["seq"] = r.Seq, ["done"] = r.Done, ["kind"] = r.Kind, ["ts"] = r.Timestamp,
            ["args"] = r.Args?.DeepClone(), ["ledger"] = r.Ledger?.DeepClone(),
        };
        string body = node.ToJsonString();
        string digest = Digest(_lastDigest, body);
        var bytes = Encoding.UTF8.GetBytes(body + "|" + digest + "\n");
        _file.Write(bytes);
        _file.Flush(flushToDisk: true);
        _lastDigest = digest;
    }

    public void Dispose() => _file.Dispose();
}
