package dtle.compat;

import java.io.BufferedOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.ChangeEvent;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Records Kafka messages as they would be written, one record a line: {@code topic TAB key TAB value} (a missing key
 * or a tombstone's value is empty). JsonConverter's output never holds a tab or a newline (Jackson escapes them), so
 * each line keeps the exact bytes.
 *
 * <pre>
 *   debezium PROPERTIES OUT   run Debezium's embedded engine with PROPERTIES; each SourceRecord's key and value go
 *                             through Kafka Connect's JsonConverter (schemas enabled, the converter's defaults), as
 *                             a Kafka Connect worker writes them, into OUT; OUT.count holds the records so far; the
 *                             engine stops when the file OUT.stop appears
 * </pre>
 * dtle's side is read back by driver/tests/e2e_kafka.rs, which writes the same format.
 */
public final class Recorder {
    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[0].equals("debezium")) {
            debezium(Path.of(args[1]), Path.of(args[2]));
        } else {
            System.err.println("usage: debezium PROPERTIES OUT");
            System.exit(2);
        }
    }

    private static void writeLine(OutputStream out, String topic, byte[] key, byte[] value) throws IOException {
        out.write(topic.getBytes(StandardCharsets.UTF_8));
        out.write('\t');
        if (key != null) out.write(key);
        out.write('\t');
        if (value != null) out.write(value);
        out.write('\n');
    }

    private static void debezium(Path propsFile, Path outFile) throws Exception {
        Properties props = new Properties();
        try (InputStream in = new FileInputStream(propsFile.toFile())) {
            props.load(in);
        }
        JsonConverter keyConverter = new JsonConverter();
        keyConverter.configure(Map.of(), true);
        JsonConverter valueConverter = new JsonConverter();
        valueConverter.configure(Map.of(), false);
        Path countFile = Path.of(outFile + ".count");
        Path stopFile = Path.of(outFile + ".stop");
        Files.deleteIfExists(stopFile);
        AtomicLong count = new AtomicLong();
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(outFile))) {
            DebeziumEngine<ChangeEvent<SourceRecord, SourceRecord>> engine = DebeziumEngine.create(Connect.class)
                .using(props)
                .notifying((List<ChangeEvent<SourceRecord, SourceRecord>> records,
                            DebeziumEngine.RecordCommitter<ChangeEvent<SourceRecord, SourceRecord>> committer) -> {
                    for (ChangeEvent<SourceRecord, SourceRecord> event : records) {
                        SourceRecord r = event.value();
                        // What WorkerSourceTask does before producing: the key and value converters (these records carry no headers).
                        byte[] key = keyConverter.fromConnectData(r.topic(), null, r.keySchema(), r.key());
                        byte[] value = valueConverter.fromConnectData(r.topic(), null, r.valueSchema(), r.value());
                        try {
                            writeLine(out, r.topic(), key, value);
                        } catch (IOException e) {
                            throw new RuntimeException(e);
                        }
                        committer.markProcessed(event);
                        count.incrementAndGet();
                    }
                    try {
                        out.flush();
                        Files.writeString(countFile, count.get() + "\n");
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                    committer.markBatchFinished();
                })
                .using((success, message, error) -> {
                    System.err.println("engine finished: success=" + success + " " + message);
                    if (error != null) error.printStackTrace();
                })
                .build();
            ExecutorService executor = Executors.newSingleThreadExecutor();
            executor.execute(engine);
            while (!Files.exists(stopFile)) {
                Thread.sleep(200);
                if (executor.isTerminated()) break;
            }
            engine.close();
            executor.shutdown();
            executor.awaitTermination(60, TimeUnit.SECONDS);
        }
        System.err.println("recorded " + count.get() + " records into " + outFile);
    }
}
