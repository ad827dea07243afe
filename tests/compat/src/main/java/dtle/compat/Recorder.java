package dtle.compat;

import java.io.BufferedOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.ChangeEvent;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
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
 *   dump BROKERS REGEX OUT    every message of the topics matching REGEX, per partition in offset order, into OUT
 * </pre>
 */
public final class Recorder {
    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[0].equals("debezium")) {
            debezium(Path.of(args[1]), Path.of(args[2]));
        } else if (args.length == 4 && args[0].equals("dump")) {
            dump(args[1], args[2], Path.of(args[3]));
        } else {
            System.err.println("usage: debezium PROPERTIES OUT | dump BROKERS TOPIC_REGEX OUT");
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
                        // What WorkerSourceTask does before producing: the converters, with the record's headers.
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

    private static void dump(String brokers, String regex, Path outFile) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", brokers);
        props.put("group.id", "dtle-compat-dump");
        props.put("enable.auto.commit", "false");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        Pattern pattern = Pattern.compile(regex);
        long n = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
             OutputStream out = new BufferedOutputStream(Files.newOutputStream(outFile))) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (Map.Entry<String, List<PartitionInfo>> t : consumer.listTopics(Duration.ofSeconds(30)).entrySet()) {
                if (!pattern.matcher(t.getKey()).matches()) continue;
                for (PartitionInfo p : t.getValue()) partitions.add(new TopicPartition(p.topic(), p.partition()));
            }
            partitions.sort((a, b) -> a.topic().equals(b.topic())
                ? Integer.compare(a.partition(), b.partition()) : a.topic().compareTo(b.topic()));
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            for (TopicPartition tp : partitions) {
                consumer.assign(List.of(tp));
                consumer.seekToBeginning(List.of(tp));
                long end = ends.get(tp);
                while (consumer.position(tp) < end) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofSeconds(1))) {
                        writeLine(out, r.topic(), r.key(), r.value());
                        n++;
                    }
                }
            }
        }
        System.err.println("dumped " + n + " records into " + outFile);
    }
}
