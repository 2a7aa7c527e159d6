package ticket

import (
	"testing"
	"time"
)

func BenchmarkParse(b *testing.B) {
	data := []byte(`{"count": 4321, "total": 20000, "sold": 15679, "version": 15679, "event": "concert"}` + "\n")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	s, _ := Parse([]byte(`{"count": 4321, "total": 20000, "sold": 15679, "version": 15679, "event": "concert"}`))
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = s.AppendEncode(buf[:0])
	}
}

func BenchmarkRecordLine(b *testing.B) {
	s := Record{Seq: 15679, Buyer: "person3", Qty: 1, Left: 4321, PID: 12345, Time: time.Now()}
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = s.AppendLine(buf[:0])
	}
}

func BenchmarkParseRecord(b *testing.B) {
	line := []byte(`{"seq":15679,"buyer":"person3","qty":1,"left":4321,"pid":12345,"time":"2026-11-25T20:35:18.937123456Z"}`)
	for b.Loop() {
		if _, err := ParseRecord(line); err != nil {
			b.Fatal(err)
		}
	}
}
