using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// The machine's own floor under the paid path's overhead, measured beside it: a bare loopback HTTP service with the
/// same shape and none of the work. Its one endpoint takes the same request from the same kind of client, hands it to
/// a dedicated thread that computes (spins) for as long as the real model call takes, is completed on that thread as
/// a lone request is by the batcher, and answers a body of the same size. There is no API key, JSON, tokenizer,
/// router, ledger or model in it: what is left is Kestrel, the client, and the thread hand-offs across a CPU-bound
/// wait. On a virtual machine the hand-off after such a wait (a core that idled meanwhile must be woken) is where the
/// tail comes from; this measures it, so the paid path's overhead can be read against it.
/// </summary>
internal sealed class OverheadFloor : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SpinWorker _worker;
    private readonly ListenOptions _listen;

    private OverheadFloor(WebApplication app, SpinWorker worker, ListenOptions listen) => (_app, _worker, _listen) = (app, worker, listen);

    /// <summary>Where it listens (after start: the bound port).</summary>
    public Uri Url => new($"http://127.0.0.1:{_listen.IPEndPoint!.Port}");

    /// <summary>Starts the service on a loopback port of its own, its worker computing for <paramref name="compute"/> per request.</summary>
    public static async Task<OverheadFloor> StartAsync(TimeSpan compute, int responseBytes, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        ListenOptions? listen = null;
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => { o.Protocols = HttpProtocols.Http1; listen = o; }));
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true); // as the server runs
        var app = builder.Build();
        var worker = new SpinWorker(compute);
        byte[] payload = new byte[responseBytes];
        app.MapPost("/v1/embeddings", async (HttpContext http) =>
        {
            var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
            double computedMs = await worker.RunAsync();
            http.Response.ContentType = "application/json";
            http.Response.Headers["X-CG-Model-Ms"] = computedMs.ToString("0.000", CultureInfo.InvariantCulture);
            http.Response.ContentLength = payload.Length;
            await http.Response.Body.WriteAsync(payload, http.RequestAborted);
        });
        await app.StartAsync(ct);
        return new OverheadFloor(app, worker, listen!);
    }

    /// <summary>
    /// One client, <paramref name="count"/> requests back to back, each the paid path's probe request (with its API key,
    /// which this service ignores); per request its latency less the worker's compute time, in ms.
    /// </summary>
    public static async Task<List<double>> ProbeAsync(HttpClient http, Uri url, string key, int count, CancellationToken ct)
    {
        var overheads = new List<double>(count);
        var target = new Uri(url, "/v1/embeddings");
        for (int i = 0; i < count; i++)
        {
            long start = Stopwatch.GetTimestamp();
            using HttpRequestMessage req = InferenceBench.EmbeddingRequest(target, key, InferenceBench.ProbeSentence(i));
            using HttpResponseMessage r = await http.SendAsync(req, ct);
            await r.Content.ReadAsByteArrayAsync(ct);
            r.EnsureSuccessStatusCode();
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            overheads.Add(ms - double.Parse(r.Headers.GetValues("X-CG-Model-Ms").Single(), CultureInfo.InvariantCulture));
        }
        return overheads;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
        _worker.Dispose();
    }

    /// <summary>
    /// A dedicated thread standing in for a model worker (the same long scheduler slice): it spins for the compute
    /// time, then completes the caller's task on its own thread, as the batcher does for a lone request.
    /// </summary>
    private sealed class SpinWorker : IDisposable
    {
        private readonly TimeSpan _compute;
        private readonly SemaphoreSlim _signal = new(0);
        private readonly Thread _thread;
        private TaskCompletionSource<double>? _job;
        private volatile bool _stop;

        public SpinWorker(TimeSpan compute)
        {
            _compute = compute;
            _thread = new Thread(Run) { IsBackground = true, Name = "floor-worker" };
            _thread.Start();
        }

        /// <summary>Computes once (one caller at a time); the result is the compute time in ms.</summary>
        public Task<double> RunAsync()
        {
            var job = new TaskCompletionSource<double>(); // continuations run on the worker, as the batcher's inline completion
            if (Interlocked.CompareExchange(ref _job, job, null) is not null) throw new InvalidOperationException("one request at a time");
            _signal.Release();
            return job.Task;
        }

        private void Run()
        {
            ComputeGrid.Core.ThreadSlice.TrySetCurrentThread(ComputeGrid.Core.ThreadSlice.Max);
            while (true)
            {
                _signal.Wait();
                if (_stop) return;
                TaskCompletionSource<double> job = Interlocked.Exchange(ref _job, null)!;
                long start = Stopwatch.GetTimestamp();
                while (Stopwatch.GetElapsedTime(start) < _compute) Thread.SpinWait(20);
                job.SetResult(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }

        public void Dispose()
        {
            _stop = true;
            _signal.Release();
            _thread.Join();
        }
    }
}
