using System.Runtime.InteropServices;

namespace ComputeGrid.Core;

/// <summary>
/// A block of zeroed unmanaged memory for the ledger's large tables. On Linux it is an anonymous mapping
/// aligned to 2 MiB and advised for transparent huge pages: the id tables are probed at random, and with
/// 4 KiB pages nearly every probe would also miss the TLB. Pages are faulted in lazily by the kernel, already
/// zeroed. The GC never scans it. Used by the ledger's id tables and transfer store and by the order books. Freed by <see cref="Dispose"/> or, as a safety net, by the finalizer.
/// </summary>
public sealed unsafe partial class NativeBlock : IDisposable
{
    private const nuint HugePage = 2 << 20;
    private void* _mapping;
    private nuint _mappingBytes;
    private readonly long _pressure;

    /// <summary>Start of the usable, zeroed memory.</summary>
    public byte* Pointer { get; private set; }

    /// <summary>Usable bytes.</summary>
    public nuint Bytes { get; }

    public NativeBlock(nuint bytes)
    {
        Bytes = Math.Max(bytes, 64);
        if (OperatingSystem.IsLinux())
        {
            // Over-map by one huge page so the usable range can start on a 2 MiB boundary.
            _mappingBytes = Bytes >= HugePage ? Bytes + HugePage : Bytes;
            _mapping = mmap(null, _mappingBytes, 3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
            if (_mapping == (void*)-1) throw new OutOfMemoryException($"mmap of {_mappingBytes} bytes failed (errno {Marshal.GetLastPInvokeError()}).");
            nuint start = (nuint)_mapping;
            if (Bytes >= HugePage)
            {
                start = (start + HugePage - 1) & ~(HugePage - 1);
                madvise((void*)start, Bytes, 14 /* MADV_HUGEPAGE */); // advisory: failure only costs speed
            }
            Pointer = (byte*)start;
        }
        else
        {
            _mapping = NativeMemory.AlignedAlloc(Bytes, 64);
            NativeMemory.Clear(_mapping, Bytes);
            Pointer = (byte*)_mapping;
        }
        _pressure = checked((long)Bytes);
        GC.AddMemoryPressure(_pressure);
    }

    /// <summary>
    /// Touches the first <paramref name="bytes"/> so the kernel maps (and zeroes) their pages now, at start-up,
    /// instead of in the middle of a hot loop: TigerBeetle's "allocate everything at start".
    /// </summary>
    public void Prefault(nuint bytes)
    {
        bytes = Math.Min(bytes, Bytes);
        for (nuint o = 0; o < bytes; o += 4096) Volatile.Write(ref Pointer[o], (byte)0);
    }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~NativeBlock() => Free();

    private void Free()
    {
        if (_mapping == null) return;
        if (OperatingSystem.IsLinux()) munmap(_mapping, _mappingBytes);
        else NativeMemory.AlignedFree(_mapping);
        _mapping = null;
        Pointer = null;
        GC.RemoveMemoryPressure(_pressure);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(void* addr, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(void* addr, nuint length, int advice);
}
