using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ComputeGrid.Server.Inference;

/// <summary>A customer of the inference API: its number (its ledger account is derived from it) and home region.</summary>
public sealed record Customer(ulong Id, string Name, string HomeRegion, DateTimeOffset Created);

/// <summary>
/// API keys → customers. Keys are random (32 bytes, base64url, prefixed <c>cg-</c>) and only their SHA-256 is kept, in
/// memory and in an append-only file (<c>inference/customers.jsonl</c> in the data folder), so a restart keeps every
/// customer. A key is shown once, when it is created.
/// </summary>
public sealed class ApiKeys
{
    private readonly ConcurrentDictionary<string, Customer> _byHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<ulong, Customer> _byId = new();
    private readonly string _path;
    private readonly Lock _write = new();
    private long _nextId;

    public ApiKeys(string directory)
    {
        Directory.CreateDirectory(directory);
        _path = Path.Combine(directory, "customers.jsonl");
        if (File.Exists(_path))
        {
            foreach (string line in File.ReadLines(_path))
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                Record? r;
                try { r = JsonSerializer.Deserialize<Record>(line); }
                catch (JsonException) { continue; } // a torn last line from a crash: that customer was never answered
                if (r is null) continue;
                var c = new Customer(r.Id, r.Name, r.Region, r.Created);
                _byHash[r.KeyHash] = c;
                _byId[c.Id] = c;
                _nextId = Math.Max(_nextId, (long)c.Id);
            }
        }
    }

    /// <summary>Creates a customer and its key (the only time the key is seen).</summary>
    public (Customer Customer, string Key) Create(string name, string homeRegion, DateTimeOffset now)
    {
        string key = "cg-" + Base64Url(RandomNumberGenerator.GetBytes(32));
        var customer = new Customer((ulong)Interlocked.Increment(ref _nextId), name, homeRegion, now);
        string hash = Hash(key);
        string line = JsonSerializer.Serialize(new Record(customer.Id, customer.Name, customer.HomeRegion, customer.Created, hash));
        lock (_write)
        {
            using var f = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
            f.Write(Encoding.UTF8.GetBytes(line + "\n"));
            f.Flush(flushToDisk: true);
        }
        _byHash[hash] = customer;
        _byId[customer.Id] = customer;
        return (customer, key);
    }

    /// <summary>The customer of a key, or null.</summary>
    public Customer? Find(string key) => _byHash.TryGetValue(Hash(key), out Customer? c) ? c : null;

    /// <summary>The customer of a number, or null.</summary>
    public Customer? Find(ulong id) => _byId.TryGetValue(id, out Customer? c) ? c : null;

    private static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private sealed record Record(ulong Id, string Name, string Region, DateTimeOffset Created, string KeyHash);
}
