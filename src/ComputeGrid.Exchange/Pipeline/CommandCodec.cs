using System.Buffers.Binary;
using System.Text;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>
/// The journal's encoding of an <see cref="ExchangeCommand"/> (little-endian). The sequence number and time are not
/// stored: a command's seq is its record's first seq plus its index, its time the record's timestamp.
/// <code>
///  0 u8 kind  1 u8 side  2 u8 type  3 u8 time in force  4 u8 post-only  5 u8 ok  6 u8 gpu class  7 u8 version (1)
///  8 i64 owner  16 i32 instrument  20 i32 gpus  24 i64 price  32 i64 quantity  40 i64 expires at  48 i64 target
/// 56 i64 from  64 i64 to  72 i64 amount  80 u128 account  96 u128 account 2
/// 112 u16 region bytes, region (UTF-8), u16 name bytes, name (UTF-8)
/// </code>
/// </summary>
public static class CommandCodec
{
    /// <summary>Bytes of the fixed part.</summary>
    public const int FixedBytes = 112;
    private const byte Version = 1;

    /// <summary>Bytes the command takes.</summary>
    public static int Size(in ExchangeCommand c) =>
        FixedBytes + 2 + (c.Region is null ? 0 : Encoding.UTF8.GetByteCount(c.Region)) + 2 + (c.Name is null ? 0 : Encoding.UTF8.GetByteCount(c.Name));

    /// <summary>Writes the command into <paramref name="into"/> (at least <see cref="Size"/> bytes); returns the bytes written.</summary>
    public static int Write(in ExchangeCommand c, Span<byte> into)
    {
        into[..FixedBytes].Clear();
        into[0] = (byte)c.Kind;
        into[1] = (byte)c.Side;
        into[2] = (byte)c.Type;
        into[3] = (byte)c.TimeInForce;
        into[4] = c.PostOnly ? (byte)1 : (byte)0;
        into[5] = c.Ok ? (byte)1 : (byte)0;
        into[6] = (byte)c.Gpu;
        into[7] = Version;
        BinaryPrimitives.WriteInt64LittleEndian(into[8..], c.Owner);
        BinaryPrimitives.WriteInt32LittleEndian(into[16..], c.Instrument);
        BinaryPrimitives.WriteInt32LittleEndian(into[20..], c.Gpus);
        BinaryPrimitives.WriteInt64LittleEndian(into[24..], c.Price);
        BinaryPrimitives.WriteInt64LittleEndian(into[32..], c.Quantity);
        BinaryPrimitives.WriteInt64LittleEndian(into[40..], c.ExpiresAt);
        BinaryPrimitives.WriteInt64LittleEndian(into[48..], c.Target);
        BinaryPrimitives.WriteInt64LittleEndian(into[56..], c.From);
        BinaryPrimitives.WriteInt64LittleEndian(into[64..], c.To);
        BinaryPrimitives.WriteInt64LittleEndian(into[72..], c.Amount);
        BinaryPrimitives.WriteUInt128LittleEndian(into[80..], c.Account);
        BinaryPrimitives.WriteUInt128LittleEndian(into[96..], c.Account2);
        int at = FixedBytes;
        at += WriteString(c.Region, into[at..]);
        at += WriteString(c.Name, into[at..]);
        return at;
    }

    private static int WriteString(string? s, Span<byte> into)
    {
        int n = s is null ? 0 : Encoding.UTF8.GetBytes(s, into[2..]);
        if (n > ushort.MaxValue) throw new ArgumentException("A command's text is longer than 65,535 bytes.");
        BinaryPrimitives.WriteUInt16LittleEndian(into, (ushort)n);
        return 2 + n;
    }

    /// <summary>Reads a command written by <see cref="Write"/>, with the seq and time given.</summary>
    /// <exception cref="FormatException">The bytes are not a command of this version.</exception>
    public static ExchangeCommand Read(ReadOnlySpan<byte> bytes, ulong seq, long time)
    {
        if (bytes.Length < FixedBytes + 4 || bytes[7] != Version) throw new FormatException($"Command {seq}: not a version-{Version} command ({bytes.Length} bytes).");
        var c = new ExchangeCommand
        {
            Seq = seq, Time = time,
            Kind = (ExchangeCommandKind)bytes[0], Side = (Side)bytes[1], Type = (OrderType)bytes[2], TimeInForce = (TimeInForce)bytes[3],
            PostOnly = bytes[4] != 0, Ok = bytes[5] != 0, Gpu = (GpuClass)bytes[6],
            Owner = BinaryPrimitives.ReadInt64LittleEndian(bytes[8..]),
            Instrument = BinaryPrimitives.ReadInt32LittleEndian(bytes[16..]),
            Gpus = BinaryPrimitives.ReadInt32LittleEndian(bytes[20..]),
            Price = BinaryPrimitives.ReadInt64LittleEndian(bytes[24..]),
            Quantity = BinaryPrimitives.ReadInt64LittleEndian(bytes[32..]),
            ExpiresAt = BinaryPrimitives.ReadInt64LittleEndian(bytes[40..]),
            Target = BinaryPrimitives.ReadInt64LittleEndian(bytes[48..]),
            From = BinaryPrimitives.ReadInt64LittleEndian(bytes[56..]),
            To = BinaryPrimitives.ReadInt64LittleEndian(bytes[64..]),
            Amount = BinaryPrimitives.ReadInt64LittleEndian(bytes[72..]),
            Account = BinaryPrimitives.ReadUInt128LittleEndian(bytes[80..]),
            Account2 = BinaryPrimitives.ReadUInt128LittleEndian(bytes[96..]),
        };
        int at = FixedBytes;
        c.Region = ReadString(bytes, ref at, seq);
        c.Name = ReadString(bytes, ref at, seq);
        if (at != bytes.Length) throw new FormatException($"Command {seq}: {bytes.Length - at} bytes after its end.");
        return c;
    }

    private static string? ReadString(ReadOnlySpan<byte> bytes, ref int at, ulong seq)
    {
        if (at + 2 > bytes.Length) throw new FormatException($"Command {seq}: truncated.");
        int n = BinaryPrimitives.ReadUInt16LittleEndian(bytes[at..]);
        at += 2;
        if (at + n > bytes.Length) throw new FormatException($"Command {seq}: truncated.");
        string? s = n == 0 ? null : Encoding.UTF8.GetString(bytes.Slice(at, n));
        at += n;
        return s;
    }
}
