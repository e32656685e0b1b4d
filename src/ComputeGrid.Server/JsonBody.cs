using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace ComputeGrid.Server;

/// <summary>
/// Reads a JSON request body for the framework's custom binding (a parameter type's <c>BindAsync</c>): the whole body
/// first, then one synchronous parse of it with the API's options. The framework's own body binding parses
/// asynchronously as the bytes arrive, which suits large bodies; on the paid path the body is one small request that
/// has already arrived, and the resumable parser's extra code, fetched into a cache the model has just emptied,
/// cost ~40 µs per request. The size limit is the endpoint's (set by the request gate before any byte is read); a body
/// that is not JSON, or not the type, is a 400 with the serializer's reason, as the framework's binding answers.
/// </summary>
public static class JsonBody
{
    /// <summary>The body as <typeparamref name="T"/>, or a <see cref="BadHttpRequestException"/> (400, or 413 past the limit).</summary>
    public static async ValueTask<T> ReadAsync<T>(HttpContext http, JsonTypeInfo<T> type) where T : class
    {
        PipeReader reader = http.Request.BodyReader;
        while (true)
        {
            ReadResult read = await reader.ReadAsync(http.RequestAborted);
            ReadOnlySequence<byte> buffer = read.Buffer;
            if (read.IsCompleted || read.IsCanceled)
            {
                try { return Parse(buffer, type); }
                finally { reader.AdvanceTo(buffer.End); }
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static T Parse<T>(ReadOnlySequence<byte> body, JsonTypeInfo<T> type) where T : class
    {
        if (body.IsEmpty) throw new BadHttpRequestException("The request has no body; send a JSON object.", StatusCodes.Status400BadRequest);
        T? value;
        try
        {
            // The span overload also refuses anything after the value.
            value = body.IsSingleSegment ? JsonSerializer.Deserialize(body.FirstSpan, type) : JsonSerializer.Deserialize(body.ToArray(), type);
        }
        catch (JsonException e)
        {
            throw new BadHttpRequestException($"Failed to read the body as {typeof(T).Name}.", StatusCodes.Status400BadRequest, e);
        }
        return value ?? throw new BadHttpRequestException("The body is null; send a JSON object.", StatusCodes.Status400BadRequest);
    }
}
