#!/bin/sh
# Native worker by default; the Java MultiLangDaemon driving `proctor consume --kcl` with KCL=1.
set -eu
if [ "${KCL:-0}" = "1" ]; then
    jars=$(python -c "import amazon_kclpy, os; print(os.path.join(os.path.dirname(amazon_kclpy.__file__), 'jars'))")
    exec java -cp "$jars/*" software.amazon.kinesis.multilang.MultiLangDaemon \
        --properties-file /app/consumer/kcl.properties "$@"
fi
exec proctor consume "$@"
